"""`GET /metrics` (Prometheus text format) and the middleware timing every request.

Latencies are labelled by route template (`/v1/projects/{project_id}/…`), never
by the raw path, so ids do not multiply the series; a request no route matched
is labelled `unmatched`. The endpoint is unauthenticated, as scrapers expect: it
shows counts and timings, no names or ids. See `tuneyard.metrics` for what each
process measures.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tuneyard.metrics import METRICS, exposition_registry

router = APIRouter(tags=["Operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics_registry
    # The database gauges run queries: keep them off the event loop.
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Pure ASGI middleware (streaming bodies pass through untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # an exception before the response started is a 500

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            METRICS.request_seconds.labels(scope["method"], route, str(status[0])).observe(
                time.perf_counter() - started)


def install(app) -> None:
    """Add the middleware and the route; the database gauges use the app's engine."""
    app.state.metrics_registry = exposition_registry(app.state.engine)
    app.add_middleware(RequestMetrics)
    app.include_router(router)
