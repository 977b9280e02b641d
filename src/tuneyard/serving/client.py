"""HTTP clients for a model-server process (see server.py for the routes).

`ModelServerClient` (blocking) and `AsyncModelServerClient` (for the API
server's async routes) have the same methods. Responses are the routes' JSON
dicts; streams are iterators of the SSE events as dicts ({"delta"} ..., then
{"done": true, ...}). A route's error raises `ModelServerRequestError`
(status_code, code, field); a server that cannot be reached raises
`ModelServerUnavailable`. httpx only: no torch here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from tuneyard.serving.errors import ModelServerRequestError, ModelServerUnavailable

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)


def _raise_for(response: httpx.Response, body: bytes) -> None:
    if response.status_code < 400:
        return
    try:
        data = json.loads(body)
        message, code, field = data["error"], data.get("code"), data.get("field")
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:500] or response.reason_phrase
        code = field = None
    raise ModelServerRequestError(message, status_code=response.status_code, code=code, field=field)


def _event(line: str) -> dict[str, Any] | None:
    """The JSON of one SSE `data:` line (None for blank lines and comments)."""
    if not line.startswith("data:"):
        return None
    event = json.loads(line[5:].strip())
    if "error" in event:
        raise ModelServerRequestError(event["error"], status_code=500, code=event.get("code"))
    return event


def _body(payload: dict[str, Any]) -> dict[str, Any]:
    # Unset sampling fields are left out: the server applies its defaults.
    return {k: v for k, v in payload.items() if v is not None}


class ModelServerClient:
    def __init__(self, url: str, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=_body(payload))
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc
        _raise_for(response, response.content)
        return response.json()

    def _stream(self, path: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with self._http.stream("POST", path, json=_body({**payload, "stream": True})) as r:
                if r.status_code >= 400:
                    _raise_for(r, r.read())
                for line in r.iter_lines():
                    if (event := _event(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc

    def health(self) -> dict[str, Any]:
        try:
            response = self._http.get("/health")
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc
        _raise_for(response, response.content)
        return response.json()

    def complete(self, prompt: str, **sampling: Any) -> dict[str, Any]:
        return self._post("/complete", {"prompt": prompt, **sampling})

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> dict[str, Any]:
        return self._post("/chat", {"messages": messages, **sampling})

    def stream_complete(self, prompt: str, **sampling: Any) -> Iterator[dict[str, Any]]:
        return self._stream("/complete", {"prompt": prompt, **sampling})

    def stream_chat(self, messages: list[dict[str, str]], **sampling: Any
                    ) -> Iterator[dict[str, Any]]:
        return self._stream("/chat", {"messages": messages, **sampling})

    def classify(self, texts: list[str] | str) -> dict[str, Any]:
        return self._post("/classify", {"texts": texts})

    def embed(self, texts: list[str] | str) -> dict[str, Any]:
        return self._post("/embed", {"texts": texts})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncModelServerClient:
    """The same methods, awaitable; the stream methods are async iterators."""

    def __init__(self, url: str, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=_body(payload))
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc
        _raise_for(response, response.content)
        return response.json()

    async def _stream(self, path: str, payload: dict[str, Any]
                      ) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self._http.stream("POST", path,
                                         json=_body({**payload, "stream": True})) as r:
                if r.status_code >= 400:
                    _raise_for(r, await r.aread())
                async for line in r.aiter_lines():
                    if (event := _event(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc

    async def health(self) -> dict[str, Any]:
        try:
            response = await self._http.get("/health")
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(f"model server at {self.url} unreachable: {exc}") from exc
        _raise_for(response, response.content)
        return response.json()

    async def complete(self, prompt: str, **sampling: Any) -> dict[str, Any]:
        return await self._post("/complete", {"prompt": prompt, **sampling})

    async def chat(self, messages: list[dict[str, str]], **sampling: Any) -> dict[str, Any]:
        return await self._post("/chat", {"messages": messages, **sampling})

    def stream_complete(self, prompt: str, **sampling: Any) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/complete", {"prompt": prompt, **sampling})

    def stream_chat(self, messages: list[dict[str, str]], **sampling: Any
                    ) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/chat", {"messages": messages, **sampling})

    async def classify(self, texts: list[str] | str) -> dict[str, Any]:
        return await self._post("/classify", {"texts": texts})

    async def embed(self, texts: list[str] | str) -> dict[str, Any]:
        return await self._post("/embed", {"texts": texts})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncModelServerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
