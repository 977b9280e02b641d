"""Pure functions turning model-server results into the wire shapes clients parse.

Two families:
- OpenAI / Emissary v2 (`/v1/completions`, `/v1/chat/completions`,
  `/v1/embeddings`, `/v1/classification`), shaped so the official `openai`
  package parses them: chat.completion, chat.completion.chunk streams
  (a role chunk, content chunks, a finish_reason chunk, an optional usage
  chunk, then `[DONE]`), text_completion, embedding lists, classification
  `data[].logits|probs`.
- Emissary per-deployment routes: `{id, response}` bodies and their
  streaming events.

Inputs are the model server's JSON (or `Generation.to_dict()`): a generation
is a mapping with text, prompt_tokens, completion_tokens, finish_reason.
No torch, no I/O.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

DONE = "data: [DONE]\n\n"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def sse(data: Any) -> str:
    """One Server-Sent Event carrying `data` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int = 0) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _finish(reason: str | None) -> str:
    # OpenAI clients accept only their own reasons; ours beyond them
    # ("cancelled": nobody is left to read it anyway) map to "stop".
    return reason if reason in ("stop", "length") else "stop"


# -- OpenAI / Emissary v2 ------------------------------------------------------

def chat_completion(result: Mapping[str, Any], *, model: str, id: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    return {
        "id": id or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result["text"]},
            "logprobs": None,
            "finish_reason": _finish(result.get("finish_reason")),
        }],
        "usage": usage(result.get("prompt_tokens", 0), result.get("completion_tokens", 0)),
    }


def text_completion(result: Mapping[str, Any], *, model: str, id: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    return {
        "id": id or new_id("cmpl"),
        "object": "text_completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "text": result["text"],
            "logprobs": None,
            "finish_reason": _finish(result.get("finish_reason")),
        }],
        "usage": usage(result.get("prompt_tokens", 0), result.get("completion_tokens", 0)),
    }


class ChatCompletionStream:
    """Turns model-server stream events into chat.completion.chunk SSE strings.

    Works with sync or async sources alike: call `start()` once, `feed(event)`
    for each event ({"delta"}, {"done", ...} or {"error"}); each returns the SSE
    strings to send. After "done" (or "error") the stream has ended with
    `[DONE]` and `finished` is True. `include_usage` (OpenAI's
    stream_options.include_usage) adds a final chunk with empty choices and usage.
    """

    object = "chat.completion.chunk"

    def __init__(self, *, model: str, id: str | None = None, created: int | None = None,
                 include_usage: bool = False):
        self.model, self.include_usage = model, include_usage
        self.id = id or new_id("chatcmpl")
        self.created = created if created is not None else int(time.time())
        self.finished = False

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": self.object, "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]}

    def start(self) -> list[str]:
        return [sse(self.chunk({"role": "assistant", "content": ""}))]

    def feed(self, event: Mapping[str, Any]) -> list[str]:
        if self.finished:
            return []
        if "error" in event:
            self.finished = True
            return [sse({"error": {"message": event["error"], "type": "server_error",
                                   "code": event.get("code")}}), DONE]
        if not event.get("done"):
            delta = event.get("delta") or ""
            return [sse(self.chunk({"content": delta}))] if delta else []
        self.finished = True
        out = [sse(self.chunk({}, _finish(event.get("finish_reason"))))]
        if self.include_usage:
            out.append(sse({"id": self.id, "object": self.object, "created": self.created,
                            "model": self.model, "choices": [],
                            "usage": usage(event.get("prompt_tokens", 0),
                                           event.get("completion_tokens", 0))}))
        return [*out, DONE]


class TextCompletionStream(ChatCompletionStream):
    """The same for /v1/completions with stream: text_completion chunks."""

    object = "text_completion"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if "id" not in kwargs or kwargs["id"] is None:
            self.id = new_id("cmpl")

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": self.object, "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "text": delta.get("content", ""), "logprobs": None,
                             "finish_reason": finish_reason}]}

    def start(self) -> list[str]:
        return []  # completions streams have no role chunk


def chat_completion_stream(events: Iterable[Mapping[str, Any]], *, model: str,
                           include_usage: bool = False, id: str | None = None,
                           created: int | None = None) -> Iterator[str]:
    """Every SSE string of a chat.completion.chunk stream, from a sync event source."""
    stream = ChatCompletionStream(model=model, include_usage=include_usage, id=id,
                                  created=created)
    yield from stream.start()
    for event in events:
        yield from stream.feed(event)
        if stream.finished:
            return
    if not stream.finished:  # the source ended without "done": say so, then end
        yield from stream.feed({"error": "the model server ended the stream early"})


def embeddings_response(vectors: Sequence[Sequence[float]], *, model: str,
                        prompt_tokens: int = 0,
                        encoding_format: str | None = "float") -> dict[str, Any]:
    """OpenAI's embedding list. `encoding_format="base64"` (what the openai
    package asks for by default) sends each vector as little-endian float32
    bytes in base64."""
    def encode(vector: Sequence[float]) -> list[float] | str:
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return [float(x) for x in vector]

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                 for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def classification_response(results: Sequence[Mapping[str, Any]], *, model: str,
                            data_format: str = "logits", prompt_tokens: int = 0,
                            id: str | None = None) -> dict[str, Any]:
    """v2 /v1/classification: `data[{index, logits: {label: value}}]` (default)
    or `probs` with `data_format="probs"`. A regression result is
    `{index, value}`. Results come from `LoadedModel.classify` (`scores` and
    `logits` are in the same label order)."""
    if data_format not in ("logits", "probs"):
        raise ValueError(f"data_format must be logits or probs, got {data_format!r}")
    data = []
    for i, result in enumerate(results):
        if "value" in result:
            data.append({"index": i, "value": result["value"]})
        elif data_format == "probs":
            data.append({"index": i, "probs": dict(result["scores"])})
        else:
            data.append({"index": i,
                         "logits": dict(zip(result["scores"], result["logits"], strict=True))})
    return {"id": id or new_id("classify"), "object": "classification", "model": model,
            "data": data, "usage": usage(prompt_tokens)}


# -- Emissary per-deployment routes ---------------------------------------------

def emissary_text(result: Mapping[str, Any], *, id: str | None = None,
                  prefix: str = "completion") -> dict[str, Any]:
    """`{id, response}` for completions and chat (prefix "chat-completion");
    finish_reason and usage ride along as extra fields."""
    return {"id": id or new_id(prefix), "response": result["text"],
            "finish_reason": result.get("finish_reason"),
            "usage": usage(result.get("prompt_tokens", 0), result.get("completion_tokens", 0))}


def emissary_classification(result: Mapping[str, Any], *, id: str | None = None
                            ) -> dict[str, Any]:
    """`response` is the label (the contract's string); `scores` holds the
    probability of each label. A regression result answers its value, as a
    string in `response` and a number in `value`."""
    body: dict[str, Any] = {"id": id or new_id("classification")}
    if "value" in result:
        return {**body, "response": repr(float(result["value"])), "value": result["value"]}
    body.update(response=result["label"], scores=dict(result["scores"]))
    if "labels" in result:
        body["labels"] = list(result["labels"])
    return body


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def manhattan_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(abs(x - y) for x, y in zip(a, b, strict=True))


def euclidean_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.sqrt(math.fsum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def emissary_embeddings(source: Sequence[float], target: Sequence[float], *,
                        cosine: bool = False, manhattan: bool = False, euclidean: bool = False,
                        id: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"embeddings": {"text1": list(source), "text2": list(target)}}
    if cosine:
        response["cosine_score"] = cosine_similarity(source, target)
    if manhattan:
        response["manhattan_distance"] = manhattan_distance(source, target)
    if euclidean:
        response["euclidean_distance"] = euclidean_distance(source, target)
    return {"id": id or new_id("embedding"), "response": response}


class EmissaryChatStream:
    """SSE for the per-deployment chat route with `streaming: true` and
    `Accept: text/event-stream`: `{id, delta}` per text delta, then
    `{id, response, finish_reason, usage}` with the whole text, then `[DONE]`.
    An error is `{id, error}` then `[DONE]`. Same start/feed protocol as
    `ChatCompletionStream`."""

    def __init__(self, *, id: str | None = None):
        self.id = id or new_id("chat-completion")
        self.finished = False

    def start(self) -> list[str]:
        return []

    def feed(self, event: Mapping[str, Any]) -> list[str]:
        if self.finished:
            return []
        if "error" in event:
            self.finished = True
            return [sse({"id": self.id, "error": event["error"]}), DONE]
        if not event.get("done"):
            delta = event.get("delta") or ""
            return [sse({"id": self.id, "delta": delta})] if delta else []
        self.finished = True
        return [sse(emissary_text(event, id=self.id)), DONE]
