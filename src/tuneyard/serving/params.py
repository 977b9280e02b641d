"""Validate and normalise generation parameters. Pure Python (no torch), so the
API server checks a request before forwarding it to a model server, and the
model server checks it again (it may be called directly).

Policy:
- `temperature` >= 0; 0 means greedy whatever `do_sample` says.
- `do_sample` omitted: sample only when a positive `temperature` is given, so
  a request with no sampling fields is deterministic (greedy).
- `top_p` in (0, 1], `top_k` >= 0 (0 = off), `no_repeat_ngram_size` >= 0.
- max tokens in [1, limit] (limit 2048 unless configured); omitted -> default.
- `stop`: a string or a list of up to 16 non-empty strings.
Greedy requests drop temperature/top_p/top_k: they mean nothing without
sampling, and transformers warns when they are set with do_sample=False.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuneyard.serving.errors import InvalidRequest, SamplingError

DEFAULT_MAX_TOKENS_LIMIT = 2048
DEFAULT_MAX_NEW_TOKENS = 256
MAX_STOP_SEQUENCES = 16
# Names a client may use for the token budget, in precedence order: Emissary's
# per-deployment routes, then v2 /v1/completions, then OpenAI chat.
MAX_TOKENS_FIELDS = ("max_new_tokens", "max_completion_tokens", "max_tokens")


@dataclass(frozen=True)
class SamplingParams:
    """Validated generation settings; `as_kwargs()` feeds `LoadedModel.complete/chat`."""

    max_new_tokens: int
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    no_repeat_ngram_size: int | None = None
    stop: tuple[str, ...] = ()

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "do_sample": self.do_sample,
            "stop": list(self.stop) or None,
        }


def _number(value: Any, field: str) -> float:
    # bool is an int subclass: `true` for a temperature is a client bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SamplingError(f"{field} must be a number, got {value!r}", field=field)
    if not math.isfinite(value):
        raise SamplingError(f"{field} must be a finite number, got {value!r}", field=field)
    return float(value)


def _integer(value: Any, field: str) -> int:
    number = _number(value, field)
    if number != int(number):
        raise SamplingError(f"{field} must be an integer, got {value!r}", field=field)
    return int(number)


def _stop_sequences(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise SamplingError("stop must be a string or a list of strings", field="stop")
    if len(items) > MAX_STOP_SEQUENCES:
        raise SamplingError(
            f"stop has {len(items)} sequences; at most {MAX_STOP_SEQUENCES} are allowed",
            field="stop",
        )
    if any(s == "" for s in items):
        raise SamplingError("stop sequences must not be empty strings", field="stop")
    return tuple(items)


def validate_sampling(
    *,
    max_new_tokens: Any = None,
    temperature: Any = None,
    top_p: Any = None,
    top_k: Any = None,
    no_repeat_ngram_size: Any = None,
    do_sample: Any = None,
    stop: Any = None,
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_tokens_field: str = "max_new_tokens",
) -> SamplingParams:
    """Check every given value; raise `SamplingError` (a ValueError) naming the field.

    `max_tokens_field` is the name the client used for the token budget
    (max_tokens, max_completion_tokens), so the message names what it sent.
    """
    if max_new_tokens is None:
        tokens = min(default_max_new_tokens, max_tokens_limit)
    else:
        tokens = _integer(max_new_tokens, max_tokens_field)
        if tokens < 1:
            raise SamplingError(
                f"{max_tokens_field} must be at least 1, got {tokens}", field=max_tokens_field
            )
        if tokens > max_tokens_limit:
            raise SamplingError(
                f"{max_tokens_field} must be at most {max_tokens_limit}, got {tokens}",
                field=max_tokens_field,
            )

    temp = None if temperature is None else _number(temperature, "temperature")
    if temp is not None and temp < 0:
        raise SamplingError(f"temperature must be >= 0, got {temperature!r}", field="temperature")
    p = None if top_p is None else _number(top_p, "top_p")
    if p is not None and not 0 < p <= 1:
        raise SamplingError(f"top_p must be in (0, 1], got {top_p!r}", field="top_p")
    k = None if top_k is None else _integer(top_k, "top_k")
    if k is not None and k < 0:
        raise SamplingError(f"top_k must be >= 0, got {top_k!r}", field="top_k")
    ngram = None if no_repeat_ngram_size is None else _integer(
        no_repeat_ngram_size, "no_repeat_ngram_size"
    )
    if ngram is not None and ngram < 0:
        raise SamplingError(
            f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size!r}",
            field="no_repeat_ngram_size",
        )
    if do_sample is not None and not isinstance(do_sample, bool):
        raise SamplingError(f"do_sample must be true or false, got {do_sample!r}",
                            field="do_sample")
    stops = _stop_sequences(stop)

    sample = do_sample if do_sample is not None else (temp is not None and temp > 0)
    if temp == 0:
        sample = False
    if not sample:
        return SamplingParams(
            max_new_tokens=tokens, do_sample=False, no_repeat_ngram_size=ngram or None, stop=stops
        )
    return SamplingParams(
        max_new_tokens=tokens,
        do_sample=True,
        temperature=temp,
        top_p=p,
        top_k=k,
        no_repeat_ngram_size=ngram or None,
        stop=stops,
    )


def sampling_from_body(
    body: Mapping[str, Any],
    *,
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> SamplingParams:
    """`validate_sampling` over a request body using any of the contract's field names.

    The token budget is the first of max_new_tokens, max_completion_tokens,
    max_tokens that is present (and not null).
    """
    field = next((f for f in MAX_TOKENS_FIELDS if body.get(f) is not None), "max_new_tokens")
    return validate_sampling(
        max_new_tokens=body.get(field),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        no_repeat_ngram_size=body.get("no_repeat_ngram_size"),
        do_sample=body.get("do_sample"),
        stop=body.get("stop"),
        max_tokens_limit=max_tokens_limit,
        default_max_new_tokens=default_max_new_tokens,
        max_tokens_field=field,
    )


ROLES = ("system", "user", "assistant")


def validate_messages(messages: Any) -> list[dict[str, str]]:
    """A non-empty list of {role, content} with a known role and string content.

    Returns plain dicts holding only role and content (extra keys like `name`
    are dropped: chat templates would not expect them).
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", field="messages")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequest(f"messages[{i}] must be an object", field="messages")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequest(
                f"messages[{i}].role must be one of {', '.join(ROLES)}, got {role!r}",
                field="messages",
            )
        if not isinstance(content, str):
            raise InvalidRequest(f"messages[{i}].content must be a string", field="messages")
        clean.append({"role": role, "content": content})
    return clean


def validate_texts(texts: Any, *, field: str = "input", max_items: int = 256) -> list[str]:
    """A string or a non-empty list of strings, as a list (embedding, classification)."""
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise InvalidRequest(f"{field} must be a string or a non-empty list of strings",
                             field=field)
    if len(items) > max_items:
        raise InvalidRequest(f"{field} has {len(items)} items; at most {max_items}", field=field)
    return items
