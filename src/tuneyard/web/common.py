"""What the page and action modules share: templates, the route class, static files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from tuneyard import __version__
from tuneyard.errors import TuneyardError
from tuneyard.web.auth import SignInRequired
from tuneyard.web.views import lower_is_better

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = STATIC / "vendor"
# Copied from node_modules by `make setup` (see package.json); never committed.
VENDOR_FILES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css")

templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value) -> str:
    if not isinstance(value, int | float):
        return "—"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _metric(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


templates.env.filters["when"] = _when
templates.env.filters["metric"] = _metric
templates.env.globals["version"] = __version__
templates.env.globals["lower_is_better"] = lower_is_better
templates.env.globals["vendor_ready"] = lambda: all((VENDOR / f).exists() for f in VENDOR_FILES)


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "application/json" not in \
        request.headers.get("accept", "")


def render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    viewer = getattr(request.state, "viewer", None)
    return templates.TemplateResponse(request, name, {"viewer": viewer, **context},
                                      status_code=status_code)


# No framing by other sites (clickjacking), no page URLs (with ids) sent elsewhere.
SECURITY_HEADERS = {"X-Frame-Options": "DENY",
                    "Content-Security-Policy": "frame-ancestors 'none'",
                    "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}


class WebRoute(APIRoute):
    """Errors as pages: no session → the sign-in page; a 404 or 400 → an HTML page
    (a JSON body for the script's own requests), like the API's but readable."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await answer(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method == "GET":
                    target = quote(request.url.path, safe="/")
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return JSONResponse({"status": 401, "error": "not signed in"}, status_code=401)
            except TuneyardError as exc:
                if wants_html(request):
                    return render(request, "error.html", status_code=exc.status,
                                  status=exc.status, message=exc.message)
                return JSONResponse({"status": exc.status, "error": exc.message},
                                    status_code=exc.status)

        return route
