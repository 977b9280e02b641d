"""OpenAI's error body on the /openai/v1 routes, and only there.

Errors everywhere are raised and rendered the tuneyard way (api.errors:
`{status, error, code}`); this middleware rewrites the error responses of
paths under `PREFIX` into OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, so every failure there
(validation, auth, not found, a body too large, a 500) reaches the openai
package as the APIError subclass it expects. `param` is the field the
message names (tuneyard messages start with it: `training_file: …`).
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/openai/"
MAX_ERROR_BODY = 256 * 1024  # an error body bigger than this is passed through as it is
_SEGMENT = re.compile(r"[A-Za-z_]\w{0,63}")

TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
         403: "invalid_request_error", 404: "invalid_request_error",
         409: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error"}
CODES = {401: "invalid_api_key", 404: "not_found", 413: "payload_too_large"}


def field_of(message: str) -> str | None:
    """The field a tuneyard message starts with (`a.b: …` -> `a.b`); pydantic's union
    branch tags (`n_epochs.literal['auto']`) are not part of it."""
    head, sep, _ = message.partition(": ")
    if not sep:
        return None
    segments = []
    for segment in head.split("."):
        if not _SEGMENT.fullmatch(segment):
            break
        segments.append(segment)
    if segments[:1] in (["query"], ["path"]):
        segments = segments[1:]
    return ".".join(segments) or None


def openai_error(status: int, body: dict) -> dict:
    """A tuneyard error body as OpenAI's."""
    message = str(body.get("error") or body.get("detail") or "error")
    param = body.get("param")
    if param is None:
        param = field_of(message)
    code = body.get("code")
    if code in (None, "object_not_found"):
        code = CODES.get(status, code)
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"),
                      "param": param, "code": code}}


class OpenAIErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if message["status"] >= 400 and \
                        headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = message  # held until the whole body is here
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            raw = b"".join(chunks)
            try:
                body = json.loads(raw) if len(raw) <= MAX_ERROR_BODY else None
            except ValueError:
                body = None
            if isinstance(body, dict) and not isinstance(body.get("error"), dict):
                raw = json.dumps(openai_error(start["status"], body)).encode()
            headers = [(k, v) for k, v in start.get("headers", [])
                       if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        await self.app(scope, receive, rewrite)
