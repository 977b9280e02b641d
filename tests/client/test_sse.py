"""The event-stream parser behind streamed chat."""

from __future__ import annotations

import pytest

from tuneyard.client import TuneyardAPIError
from tuneyard.client.sse import events, text_deltas


def test_events_follow_the_sse_rules():
    lines = [": keep-alive", "event: token", "data: a", "data: b", "", "data:c", ""]
    assert [(e.event, e.data) for e in events(lines)] == [("token", "a\nb"), ("message", "c")]


def test_openai_chunks_until_done():
    lines = [
        'data: {"choices": [{"delta": {"role": "assistant"}}]}', "",
        'data: {"choices": [{"delta": {"content": "Hel"}}]}', "",
        'data: {"choices": [{"delta": {"content": "lo"}, "finish_reason": null}]}', "",
        "data: [DONE]", "",
        'data: {"choices": [{"delta": {"content": "never"}}]}', "",
    ]
    assert list(text_deltas(lines)) == ["Hel", "lo"]


def test_error_event_raises_with_its_message():
    lines = ['data: {"choices": [{"delta": {"content": "a"}}]}', "",
             'data: {"error": {"message": "model unloaded", "code": 503}}', ""]
    stream = text_deltas(lines)
    assert next(stream) == "a"
    with pytest.raises(TuneyardAPIError, match="model unloaded") as caught:
        next(stream)
    assert caught.value.status == 503


def test_tuneyard_error_body_in_stream():
    with pytest.raises(TuneyardAPIError, match="boom"):
        list(text_deltas(["event: error", 'data: {"status": 500, "error": "boom"}', ""]))
