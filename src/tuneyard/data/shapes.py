"""Record shapes: which shape a record has, checking a record against one, its normalized form.

The shapes are the ones the Emissary platform documents for dataset files. A dataset's shape
is decided by its first record; every record is then checked against that shape. Keys beyond
the required ones are ignored. Normalized records are what training and evaluation read:

    prompt_completion, input_output  {"prompt": str, "completion": str}
    regression                       {"text": str, "value": float}
    classification                   {"text": str, "labels": [str, ...]}   (labels set to 1)
    chat                             {"messages": [{"role": str, "content": str}, ...]}
    pairs                            {"text1": str, "text2": str, "score": float}
    preference                       {"prompt": P, "chosen": C, "rejected": C}: P and C
                                     are each a string, or a list of chat messages

A preference record is DPO's: a prompt, the answer to prefer and the one to avoid. Its
chat variant has message lists (the prompt's turns; the chosen and the rejected replies,
usually one assistant message each); chosen and rejected are of the same kind.
"""

from __future__ import annotations

import math
from typing import Any

from .readers import kind

SHAPES = ("prompt_completion", "regression", "classification", "input_output", "chat", "pairs",
          "preference")

SHAPE_DESCRIPTIONS = {
    "prompt_completion": '{"prompt": text, "completion": text}',
    "regression": '{"prompt": text, "completion": number}',
    "classification": '{"prompt": text, "completion": {label: 0 or 1, ...}}',
    "input_output": "input,expected_output",
    "chat": '{"messages": [{"role": ..., "content": ...}, ...]}',
    "pairs": "text1,text2,score (a score between 0 and 1)",
    "preference": '{"prompt": text or messages, "chosen": text or messages, '
                  '"rejected": text or messages}',
}

REQUIRED_KEYS = {
    "prompt_completion": ("prompt", "completion"),
    "regression": ("prompt", "completion"),
    "classification": ("prompt", "completion"),
    "input_output": ("input", "expected_output"),
    "chat": ("messages",),
    "pairs": ("text1", "text2", "score"),
    "preference": ("prompt", "chosen", "rejected"),
}

ROLES = ("system", "user", "assistant")

# Which shape a prompt/completion record is, by the kind of its completion.
_BY_COMPLETION = {"string": "prompt_completion", "number": "regression",
                  "object": "classification"}
_BAD_COMPLETION = "'completion' must be a string, a number or an object of label -> 0/1, got {}"
_KEY_SETS = ("prompt,completion or input,expected_output or messages or text1,text2,score "
             "or prompt,chosen,rejected")


def detect_shape(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(shape, None)``, or ``(None, why)`` when the record fits no shape."""
    if "chosen" in record and "rejected" in record:
        return "preference", None  # before prompt/completion: a preference record has a prompt
    if "prompt" in record and "completion" in record:
        completion_kind = kind(record["completion"])
        if completion_kind in _BY_COMPLETION:
            return _BY_COMPLETION[completion_kind], None
        return None, _BAD_COMPLETION.format(completion_kind)
    for shape in ("input_output", "chat", "pairs"):
        if all(key in record for key in REQUIRED_KEYS[shape]):
            return shape, None
    found = ",".join(sorted(record)[:10]) or "none"
    return None, f"a record needs the keys {_KEY_SETS} (found: {found})"


def check_record(record: dict[str, Any], *, shape: str,
                 from_text: bool = False) -> tuple[dict[str, Any] | None, list[str]]:
    """The normalized record and no problems, or None and what is wrong with it.

    ``from_text`` is for CSV, whose values are all strings: a pairs score is parsed.
    """
    missing = [key for key in REQUIRED_KEYS[shape] if key not in record]
    if missing:
        found, _ = detect_shape(record)
        if found is not None:
            return None, [f"record has the keys of a {found} dataset but this dataset is "
                          f"{shape} (decided by its first record)"]
        names = ", ".join(repr(key) for key in missing)
        return None, [f"missing {names} (the dataset is {shape}: {SHAPE_DESCRIPTIONS[shape]})"]
    problems: list[str] = []
    normalized = _CHECKS[shape](record, problems, from_text)
    return (None, problems) if problems else (normalized, [])


def parse_number(text: str) -> float | None:
    """The finite number a CSV cell holds, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _text(record: dict, key: str, problems: list[str], *, non_empty: bool = False) -> str:
    value = record[key]
    if not isinstance(value, str):
        problems.append(f"{key!r} must be a string, got {kind(value)}")
        return ""
    if non_empty and not value.strip():
        problems.append(f"{key!r} must not be empty")
    return value


def _completion(record: dict, shape: str, problems: list[str]) -> Any:
    # A completion of another valid kind means records of two shapes are mixed.
    value = record["completion"]
    found = _BY_COMPLETION.get(kind(value))
    if found is None:
        problems.append(_BAD_COMPLETION.format(kind(value)))
    elif found != shape:
        problems.append(f"'completion' is {_article(kind(value))} but the dataset is {shape} "
                        f"({SHAPE_DESCRIPTIONS[shape]}, decided by its first record)")
    return value


def _article(kind_name: str) -> str:
    return f"an {kind_name}" if kind_name[0] in "aeiou" else f"a {kind_name}"


def _prompt_completion(record: dict, problems: list[str], from_text: bool) -> dict:
    prompt = _text(record, "prompt", problems)
    completion = _completion(record, "prompt_completion", problems)
    if isinstance(completion, str) and not completion.strip():
        problems.append("'completion' must not be empty")
    return {"prompt": prompt, "completion": completion}


def _regression(record: dict, problems: list[str], from_text: bool) -> dict:
    prompt = _text(record, "prompt", problems)
    value = _completion(record, "regression", problems)
    if kind(value) != "number":
        return {}
    try:
        number = float(value)  # an integer too large for a float overflows
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        problems.append(f"'completion' must be a finite number, got {value}")
    return {"text": prompt, "value": number}


def _classification(record: dict, problems: list[str], from_text: bool) -> dict:
    prompt = _text(record, "prompt", problems)
    completion = _completion(record, "classification", problems)
    if not isinstance(completion, dict):
        return {}
    if not completion:
        problems.append("'completion' has no labels")
    bad = [label for label, v in completion.items() if kind(v) not in ("number", "bool")
           or v not in (0, 1)]
    for label in bad[:3]:
        problems.append(f"label {label!r} must be 0 or 1, got {completion[label]!r}")
    on = sorted(label for label, v in completion.items() if label not in bad and v == 1)
    if completion and not bad and not on:
        problems.append("'completion' has no label set to 1")
    return {"text": prompt, "labels": on}


def _input_output(record: dict, problems: list[str], from_text: bool) -> dict:
    prompt = _text(record, "input", problems)
    completion = _text(record, "expected_output", problems, non_empty=True)
    return {"prompt": prompt, "completion": completion}


def _chat(record: dict, problems: list[str], from_text: bool) -> dict:
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        what = "an empty list" if messages == [] else kind(messages)
        problems.append(f"'messages' must be a non-empty list of messages, got {what}")
        return {}
    normalized = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(f"{where} must be an object with role and content, "
                            f"got {kind(message)}")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problems.append(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            problems.append(f"{where}.content must be a string, got {kind(content)}")
        normalized.append({"role": role, "content": content})
    if not problems and not any(m["role"] == "assistant" for m in normalized):
        problems.append("'messages' has no assistant message to learn from")
    return {"messages": normalized}


def _pairs(record: dict, problems: list[str], from_text: bool) -> dict:
    text1 = _text(record, "text1", problems)
    text2 = _text(record, "text2", problems)
    score = record["score"]
    if from_text and isinstance(score, str):
        parsed = parse_number(score)
        score = parsed if parsed is not None else score
    if kind(score) != "number" or not 0 <= score <= 1:  # NaN fails the range test too
        problems.append(f"'score' must be a number between 0 and 1, got {score!r}")
        score = 0.0
    return {"text1": text1, "text2": text2, "score": float(score)}


def _messages(value, key: str, problems: list[str]) -> list[dict]:
    """A normalized message list, its problems appended (at most three)."""
    if not value:
        problems.append(f"{key!r} must not be empty")
        return []
    normalized, found = [], []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            found.append(f"{where} must be an object with role and content, got {kind(message)}")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            found.append(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            found.append(f"{where}.content must be a string, got {kind(content)}")
        normalized.append({"role": role, "content": content})
    problems.extend(found[:3])
    return normalized


def _preference_part(record: dict, key: str, problems: list[str]):
    value = record[key]
    if isinstance(value, str):
        if key != "prompt" and not value.strip():
            problems.append(f"{key!r} must not be empty")
        return value
    if isinstance(value, list):
        return _messages(value, key, problems)
    problems.append(f"{key!r} must be a string or a list of messages, got {kind(value)}")
    return value


def _preference(record: dict, problems: list[str], from_text: bool) -> dict:
    prompt = _preference_part(record, "prompt", problems)
    chosen = _preference_part(record, "chosen", problems)
    rejected = _preference_part(record, "rejected", problems)
    if not problems and isinstance(chosen, list) != isinstance(rejected, list):
        problems.append("'chosen' and 'rejected' must be of the same kind (both text or both "
                        "message lists)")
    if not problems and isinstance(prompt, list) and not isinstance(chosen, list):
        problems.append("a prompt of messages needs 'chosen' and 'rejected' as message lists")
    if not problems and chosen == rejected:
        problems.append("'chosen' and 'rejected' are the same: nothing to prefer")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


_CHECKS = {"prompt_completion": _prompt_completion, "regression": _regression,
           "classification": _classification, "input_output": _input_output, "chat": _chat,
           "pairs": _pairs, "preference": _preference}
