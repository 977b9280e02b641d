"""Server-Sent Events: parse a `text/event-stream` body into text deltas.

Two producers are understood: OpenAI-style `chat.completion.chunk` events
(`choices[0].delta.content`, then `data: [DONE]`), which `/v1/chat/completions`
sends, and tuneyard's per-deployment stream (`{"delta": "..."}` per piece, a
final `{"response": "<whole text>"}` that is not repeated, and a done marker).
An `error` event, or a body with an `error` field, raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import TuneyardAPIError

DONE = "[DONE]"


@dataclass(frozen=True)
class Event:
    event: str
    data: str


def events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of an event stream (per the WHATWG SSE rules we need)."""
    name, data = "message", []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Event(name, "\n".join(data))
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment / keep-alive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:
        yield Event(name, "\n".join(data))


def text_deltas(lines: Iterable[str]) -> Iterator[str]:
    """The text pieces of a chat stream, in order, until its done marker."""
    for event in events(lines):
        if event.data.strip() == DONE or event.event == "done":
            return
        try:
            payload = json.loads(event.data)
        except ValueError:
            payload = event.data
        if event.event == "error" or (isinstance(payload, dict) and "error" in payload):
            raise _stream_error(payload)
        delta = _delta(payload)
        if delta:
            yield delta


def _delta(payload: object) -> str | None:
    if isinstance(payload, str):
        return payload
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("choices"), list) and payload["choices"]:
        choice = payload["choices"][0] or {}
        delta = choice.get("delta") or {}
        return delta.get("content") or choice.get("text")
    if isinstance(payload.get("delta"), str):
        return payload["delta"]
    return None  # e.g. the final event with the whole response: already streamed


def _stream_error(payload: object) -> TuneyardAPIError:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):  # OpenAI's {"error": {"message": ..., "code": ...}}
            code = error.get("code")
            return TuneyardAPIError(code if isinstance(code, int) else 500,
                                    str(error.get("message") or error))
        status = payload.get("status")
        return TuneyardAPIError(status if isinstance(status, int) else 500, str(error))
    return TuneyardAPIError(500, str(payload))
