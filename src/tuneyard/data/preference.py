"""OpenAI's preference (DPO) format, mapped to tuneyard's preference rows.

An OpenAI preference record:

    {"input": {"messages": [{"role": "user", "content": "..."}], ...},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

becomes a conversational preference row (TRL's form, rendered with the
model's chat template at training time):

    {"prompt": [messages...], "chosen": [messages...], "rejected": [messages...]}
"""

from __future__ import annotations

from typing import Any

PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")


def is_preference_record(record: Any) -> bool:
    return isinstance(record, dict) and all(key in record for key in PREFERENCE_KEYS)


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}[{i}]: a message is {{\"role\": text, \"content\": text}}")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def preference_row(record: Any, *, line: int | None = None) -> dict[str, list]:
    """One OpenAI preference record as {"prompt", "chosen", "rejected"}; ValueError
    (naming the line and field) when it is not one."""
    at = f"line {line}: " if line is not None else ""
    if not is_preference_record(record):
        found = ",".join(sorted(record)[:10]) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{at}a preference record needs the keys "
                         f"{', '.join(PREFERENCE_KEYS)} (found: {found})")
    source = record["input"]
    if not isinstance(source, dict) or "messages" not in source:
        raise ValueError(f"{at}input: must be an object with 'messages'")
    prompt = _messages(source["messages"], f"{at}input.messages")
    chosen = _messages(record["preferred_output"], f"{at}preferred_output")
    rejected = _messages(record["non_preferred_output"], f"{at}non_preferred_output")
    for where, messages in (("preferred_output", chosen), ("non_preferred_output", rejected)):
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"{at}{where}: the last message must be the assistant's")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
