"""The request guard: authentication and body limits before any route reads a body.

FastAPI reads and parses a request's body while it resolves the route's
parameters, before (or beside) the dependency that checks the key, so without
this an anonymous caller could make the server buffer and parse any amount.
This ASGI middleware runs first:

- a request for a route that needs a key (one whose dependencies include
  `current_user`) is refused with 401 unless it carries a valid key — without
  its body ever being received;
- a body larger than its limit is refused with 413: at once when its
  `Content-Length` says so, else while it streams (chunked transfer included),
  cut at the limit. Upload routes (marked with `accepts_upload`) take
  `TUNEYARD_MAX_UPLOAD_BYTES` plus multipart framing, every other route
  `TUNEYARD_MAX_JSON_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_MARK = "__tuneyard_accepts_upload__"
# Multipart framing around an uploaded file: boundaries, part headers, the name field.
MULTIPART_OVERHEAD = 64 * 1024


def accepts_upload(endpoint: Callable) -> Callable:
    """Marks a route whose body is a file upload (the upload limit applies, not the JSON one)."""
    setattr(endpoint, UPLOAD_MARK, True)
    return endpoint


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes its limit."""


def key_from_headers(x_api_key: str | None, authorization: str | None) -> str:
    """The API key a request carries (`X-API-Key`, else `Authorization: Bearer`), or ''."""
    key = (x_api_key or "").strip()
    if key:
        return key
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""


def _requires_key(route: APIRoute) -> bool:
    from tuneyard.api.deps import current_user

    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is current_user:
            return True
        stack.extend(dependant.dependencies)
    return False


def _has_body(scope: Scope) -> bool:
    headers = {k.lower(): v for k, v in scope.get("headers", ())}
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0").strip() \
        not in (b"", b"0")


def _error(scope: Scope, status: int, message: str, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "error": message}
    if code:
        body["code"] = code
    # A body left unread: closing the connection keeps the server from reading
    # (and discarding) the rest of it in order to reuse the connection.
    headers = {"Connection": "close"} if _has_body(scope) else None
    return JSONResponse(body, status_code=status, headers=headers)


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs_key: dict[int, bool] = {}

    def _route(self, scope: Scope) -> APIRoute | None:
        """The route that will answer, found as the router will find it. Routers are
        included without a prefix, so each route's own path is matched; FastAPI
        nests included routers (`original_router`), so they are walked."""
        probe = {**scope}  # matching may note things in the scope; keep the real one clean
        stack = list(getattr(getattr(scope.get("app"), "router", None), "routes", ()))[::-1]
        while stack:
            route = stack.pop()
            inner = getattr(route, "original_router", None)
            if inner is not None:
                stack.extend(list(inner.routes)[::-1])
            elif isinstance(route, APIRoute) and route.matches(probe)[0] == Match.FULL:
                return route
        return None

    def needs_key(self, route: APIRoute) -> bool:
        found = self._needs_key.get(id(route))
        if found is None:
            found = self._needs_key[id(route)] = _requires_key(route)
        return found

    async def _authenticate(self, scope: Scope) -> str | None:
        """None if the request carries a valid key (its user id is kept in the
        request state for `current_user`), else why it is refused."""
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        key = key_from_headers(headers.get(b"x-api-key", b"").decode("latin-1"),
                               headers.get(b"authorization", b"").decode("latin-1"))
        if not key:
            return "missing API key: send it as X-API-Key or Authorization: Bearer"
        engine = scope["app"].state.engine

        def lookup() -> str | None:
            from sqlalchemy.orm import Session

            from tuneyard.services.keys import user_for_key

            with Session(engine) as session:
                user = user_for_key(session=session, key=key)
                return user.id if user is not None else None

        user_id = await run_in_threadpool(lookup)
        if user_id is None:
            return "invalid API key"
        scope.setdefault("state", {})["user_id"] = user_id
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not hasattr(scope.get("app"), "state"):
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        if route is not None and self.needs_key(route):
            problem = await self._authenticate(scope)
            if problem is not None:
                await _error(scope, 401, problem)(scope, receive, send)
                return
        settings = scope["app"].state.settings
        if route is not None and getattr(route.endpoint, UPLOAD_MARK, False):
            limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
            too_large = (f"file: upload exceeds the limit of {settings.max_upload_bytes} "
                         "bytes (TUNEYARD_MAX_UPLOAD_BYTES)")
        else:
            limit = settings.max_json_bytes
            too_large = (f"body: the request body exceeds the limit of {limit} bytes "
                         "(TUNEYARD_MAX_JSON_BYTES)")
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"),
                        None)
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                refusal = _error(scope, 400, "Content-Length: must be a number of bytes")
                await refusal(scope, receive, send)
                return
            if len(text) > 18 or int(text) > limit:
                await _error(scope, 413, too_large, "payload_too_large")(scope, receive, send)
                return
        await self._limited(scope, receive, send, limit=limit, message=too_large)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, *, limit: int,
                       message: str) -> None:
        """Runs the app with a `receive` that counts the body and stops it past `limit`;
        whatever the app then answers, the client gets the 413."""
        state = {"received": 0, "over": False, "started": False}

        async def counted() -> Message:
            if state["over"]:
                raise BodyTooLarge(message)
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise BodyTooLarge(message)
            return msg

        async def guarded_send(msg: Message) -> None:
            if state["over"] and msg["type"].startswith("http.response"):
                if not state["started"]:
                    state["started"] = True
                    await _error(scope, 413, message, "payload_too_large")(scope, receive, send)
                return  # the app's own answer to the cut body is dropped
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, counted, guarded_send)
        except BodyTooLarge:
            if not state["started"]:
                state["started"] = True
                await _error(scope, 413, message, "payload_too_large")(scope, receive, send)
            return
        except Exception:
            if state["over"] and not state["started"]:
                state["started"] = True
                await _error(scope, 413, message, "payload_too_large")(scope, receive, send)
                return
            raise
