"""Forwarding inference requests to a deployment's model server.

Checks that the route fits the deployment's task, loads the model if needed
(serverless, deactivated), and turns model-server errors into our 4xx bodies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from tuneyard.api.deps import release_db
from tuneyard.errors import InvalidInput, TuneyardError
from tuneyard.serving.errors import ModelServerError, ModelServerRequestError
from tuneyard.tables import Deployment

# Which model-server method each task answers.
TASK_METHODS = {
    "text-generation": {"complete", "chat"},
    "classification": {"classify"},
    "regression": {"classify"},
    "embedding": {"embed"},
}
ROUTE_NAMES = {"complete": "completions", "chat": "chat completions",
               "classify": "classification", "embed": "embeddings"}


class ModelFailed(TuneyardError):
    status = 502
    code = "model_failed"


def manager_for(request: Request, row: Deployment):
    """A deployment on an inference engine is served by the engine manager."""
    return request.app.state.engines if row.engine_id else request.app.state.deployments


def check_task(row: Deployment, method: str) -> None:
    if method not in TASK_METHODS.get(row.task_type, set()):
        fits = sorted(ROUTE_NAMES[m] for m in TASK_METHODS.get(row.task_type, ()))
        raise InvalidInput(f"deployment {row.id} serves a {row.task_type} model: "
                           f"{ROUTE_NAMES[method]} does not apply (it answers "
                           f"{', '.join(fits)})")


def _translate(exc: ModelServerError) -> TuneyardError:
    if isinstance(exc, ModelServerRequestError) and 400 <= exc.status_code < 500:
        return InvalidInput(exc.message)
    return ModelFailed(f"the model server failed: {exc.message}")


async def call_model(request: Request, row: Deployment, method: str, *args: Any,
                     **kwargs: Any) -> dict:
    check_task(row, method)
    await release_db(request)  # a model call may take minutes (a load, then the answer)
    running = await manager_for(request, row).client_for(row)
    try:
        return await getattr(running.client, method)(*args, **kwargs)
    except ModelServerError as exc:
        raise _translate(exc) from None


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def stream_model(request: Request, row: Deployment, messages: list[dict],
                       params: dict[str, Any], formatter, *,
                       method: str = "stream_chat") -> AsyncIterator[str]:
    """Start a streamed generation and return the SSE text iterator.

    The first event is awaited here, so a request the model refuses at once
    still gets a plain 400 instead of a broken stream.
    """
    check_task(row, "chat" if method == "stream_chat" else "complete")
    await release_db(request)  # a model call may take minutes (a load, then the answer)
    running = await manager_for(request, row).client_for(row)
    events = getattr(running.client, method)(messages, **params).__aiter__()
    try:
        first = await events.__anext__()
    except StopAsyncIteration:
        first = None
    except ModelServerError as exc:
        raise _translate(exc) from None

    async def body() -> AsyncIterator[str]:
        for chunk in formatter.start():
            yield chunk
        if first is not None:
            for chunk in formatter.feed(first):
                yield chunk
        try:
            async for event in events:
                running.last_request = time.time()
                for chunk in formatter.feed(event):
                    yield chunk
        except ModelServerError as exc:
            for chunk in formatter.feed({"error": exc.message}):
                yield chunk

    return body()
