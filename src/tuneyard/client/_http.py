"""The one place the client talks HTTP: sends requests, turns failures into exceptions.

Resource classes (projects, jobs, …) only name a method, a path and a body;
authentication, timeouts and error mapping live here, so a new route is a
few lines in a resource class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tuneyard import __version__

from .errors import TuneyardAPIError, TuneyardConnectionError

# For requests whose answer legitimately takes long: a large upload the server
# validates before answering, inference on a model that first has to load.
LONG_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def error_from(response: httpx.Response) -> TuneyardAPIError:
    """The exception for an error response; the message is the server's `error` text.

    The response body must have been read (`response.read()` for a stream).
    """
    message, code = None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            message = body["error"]
        elif isinstance(body.get("detail"), str):  # a non-tuneyard server or proxy
            message = body["detail"]
        code = body.get("code") if isinstance(body.get("code"), str) else None
    if not message:
        text = response.text.strip().splitlines()
        message = text[0][:300] if text else (response.reason_phrase or "request failed")
    return TuneyardAPIError(response.status_code, message, code=code)


class Http:
    """An httpx client bound to one server and key.

    The key goes only to paths on the server (`/v1/...`), never to an absolute
    URL: signed download URLs carry their own authorization and may point at
    another host (an S3-compatible store), which must not see the key.
    """

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": f"tuneyard-client/{__version__}"},
            transport=transport,
            # Redirects are followed only for absolute (signed) URLs, which carry
            # no key: httpx would forward X-API-Key to wherever a redirect points.
            follow_redirects=False,
        )

    def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.api_key and not url.startswith(("http://", "https://")):
            headers["X-API-Key"] = self.api_key
        return headers

    def _unreachable(self, exc: httpx.TransportError) -> TuneyardConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            what = f"timed out talking to tuneyard at {self.base_url}"
        else:
            what = f"cannot reach tuneyard at {self.base_url}"
        reason = str(exc) or type(exc).__name__
        return TuneyardConnectionError(f"{what}: {reason}")

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send one request; raise `TuneyardAPIError` for any status >= 400."""
        try:
            response = self.client.request(method, url, headers=self._headers(url, headers),
                                           **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send one request and return its JSON body (None for an empty body, e.g. 204)."""
        response = self.request(method, url, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise TuneyardAPIError(response.status_code,
                                   f"{method} {url}: the server did not answer with JSON") from None

    def pages(self, url: str, *, limit: int | None = None) -> list[Any]:
        """Every item of a paged list: follows `X-Next-After` until the last page."""
        items: list[Any] = []
        params: dict[str, Any] = {"limit": limit} if limit else {}
        while True:
            response = self.request("GET", url, params=params)
            items.extend(response.json())
            after = response.headers.get("x-next-after")
            if not after or after == params.get("after"):
                return items
            params = {**params, "after": after}

    @contextmanager
    def stream(self, method: str, url: str, *, headers: dict[str, str] | None = None,
               ok_statuses: tuple[int, ...] = (), **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response; error statuses (not in `ok_statuses`) raise.

        A connection that breaks while the caller reads the body raises
        `TuneyardConnectionError` out of the `with` block, like a failed connect.
        """
        try:
            absolute = url.startswith(("http://", "https://"))
            with self.client.stream(method, url, headers=self._headers(url, headers),
                                    follow_redirects=absolute, **kwargs) as response:
                if response.status_code >= 400 and response.status_code not in ok_statuses:
                    response.read()
                    raise error_from(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def close(self) -> None:
        self.client.close()
