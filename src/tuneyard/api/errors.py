"""Error bodies exactly as the contract has them; validation failures are 400.

Every request gets an id (`X-Request-ID` on the response). An error that is
validation in all but name (a ValueError, OverflowError, RecursionError,
UnicodeError, a pydantic ValidationError, a JSON decode error, a value the
database refuses) raised while handling a request is a 400 naming it; anything
else is a 500 that is logged with the request id, which its body carries too.
"""

from __future__ import annotations

import json
import logging
import uuid

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuneyard.errors import TuneyardError

log = logging.getLogger("tuneyard.api")

REQUEST_ID_HEADER = "X-Request-ID"
# Messages quote what the caller sent; never echo kilobytes of it back.
MAX_MESSAGE = 1000

# Raised while handling a request, these mean the input was unusable.
VALIDATION_TYPE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,  # includes UnicodeError, json.JSONDecodeError, pydantic.ValidationError
    OverflowError,
    RecursionError,
    pydantic.ValidationError,
    json.JSONDecodeError,
    UnicodeError,
    DataError,  # the database refused a value (out of range, NUL byte, too long)
)


def short(message: str, limit: int = MAX_MESSAGE) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def request_id_of(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or "-"


class RequestIdMiddleware:
    """Gives each HTTP request an id: `request.state.request_id`, and the
    `X-Request-ID` header of whatever response the app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def describe_validation(exc: RequestValidationError) -> str:
    """One line per problem, naming the field: `body.parameters.lr: extra inputs…`."""
    parts = []
    for err in exc.errors():
        loc = [short(str(p), 100) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return short("; ".join(parts) or "invalid request")


def describe_unexpected_input(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "input is nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"body: invalid JSON: {exc.msg} at position {exc.pos}"
    if isinstance(exc, UnicodeError):
        return "input is not valid UTF-8 text"
    if isinstance(exc, pydantic.ValidationError):
        return short("; ".join(
            f"{'.'.join(short(str(p), 100) for p in e.get('loc', ())) or 'value'}: "
            f"{e.get('msg', 'invalid')}" for e in exc.errors()) or "invalid input")
    if isinstance(exc, DataError):
        return "a value is out of the range the database can store"
    text = str(exc) or type(exc).__name__
    return short(f"invalid input: {text}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(TuneyardError)
    async def _tuneyard_error(_request: Request, exc: TuneyardError) -> JSONResponse:
        body = exc.body()
        body["error"] = short(str(body["error"]))
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"status": 400, "error": describe_validation(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body: dict = {"status": exc.status_code, "error": short(str(exc.detail))}
        if exc.status_code == 404:
            body["code"] = "object_not_found"
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def _unusable_input(request: Request, exc: Exception) -> JSONResponse:
        log.info("request %s %s %s: unusable input (%s)", request_id_of(request),
                 request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"status": 400, "error": describe_unexpected_input(exc)},
                            status_code=400)

    for kind in VALIDATION_TYPE_ERRORS:
        app.add_exception_handler(kind, _unusable_input)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request_id_of(request)
        log.error("unhandled error (request id %s) on %s %s", request_id,
                  request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"status": 500, "error": f"internal error (request id {request_id})"},
            status_code=500, headers={REQUEST_ID_HEADER: request_id},
        )
