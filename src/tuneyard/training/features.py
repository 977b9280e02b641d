"""Task-form records → model inputs (token ids, labels) and the batch collator.

Text generation learns only what the model must produce: the completion (and
EOS) for prompt/completion records, the assistant turns for chat records;
every other position gets the label -100, which the loss ignores.
"""

from __future__ import annotations

import re

import torch

from tuneyard.training.job import TrainingError

IGNORE = -100
_GENERATION_BLOCK = re.compile(r"{%-?\s*generation\s*-?%}")


def _ids(encoded) -> list[int]:
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    return list(ids)


def completion_features(tokenizer, prompt: str, completion: str, max_len: int) -> dict:
    prompt_ids = _ids(tokenizer(prompt))  # with the tokenizer's own BOS, as at inference
    completion_ids = _ids(tokenizer(completion, add_special_tokens=False))
    if tokenizer.eos_token_id is not None:
        completion_ids.append(tokenizer.eos_token_id)
    if len(prompt_ids) + len(completion_ids) > max_len:
        # Keep at least half the window for the completion: a truncated prompt
        # still teaches something, a missing completion teaches nothing.
        keep_completion = min(len(completion_ids), max(max_len - len(prompt_ids), max_len // 2))
        keep_prompt = max_len - keep_completion
        prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt:] if keep_prompt else []
        completion_ids = completion_ids[:keep_completion]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE] * len(prompt_ids) + completion_ids,
    }


def _template_ids(tokenizer, messages, **kwargs) -> list[int]:
    return _ids(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs))


def assistant_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of the conversation and a 0/1 mask of the assistant tokens."""
    template = tokenizer.chat_template or ""
    if _GENERATION_BLOCK.search(template):
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return list(out["input_ids"]), list(out["assistant_masks"])
    # Templates without {% generation %} markers: find each assistant turn by
    # rendering the conversation up to it (with the generation prompt) and
    # through it; the tokens in between are the assistant's.
    ids = _template_ids(tokenizer, messages)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = len(_template_ids(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_template_ids(tokenizer, messages[: i + 1]))
        mask[start:end] = [1] * (end - start)
    return ids, mask


def chat_features(tokenizer, messages: list[dict], max_len: int) -> dict:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(
            "the base model's tokenizer has no chat template, so it cannot train on "
            "chat (messages) records; use prompt/completion records or a chat model"
        )
    ids, mask = assistant_mask(tokenizer, messages)
    ids, mask = ids[:max_len], mask[:max_len]
    labels = [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]
    return {"input_ids": ids, "labels": labels}


def text_generation_features(tokenizer, examples: list[dict], max_len: int) -> list[dict]:
    """Features for each record; records left with nothing to learn are dropped."""
    features = []
    for example in examples:
        if "messages" in example:
            item = chat_features(tokenizer, example["messages"], max_len)
        else:
            item = completion_features(tokenizer, example["prompt"], example["completion"], max_len)
        if any(label != IGNORE for label in item["labels"][1:]):
            features.append(item)
    return features


def label_ids(example: dict, label2id: dict[str, int], multi_label: bool):
    names = example.get("labels")
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in label2id]
    if unknown:
        raise TrainingError(
            f"label {unknown[0]!r} is not one of the job's labels: {sorted(label2id)}"
        )
    if multi_label:
        vector = [0.0] * len(label2id)
        for name in names:
            vector[label2id[name]] = 1.0
        return vector
    if len(names) != 1:
        raise TrainingError(
            f"single-label classification needs exactly one label per example, got {names!r}"
        )
    return label2id[names[0]]


def sequence_features(tokenizer, examples, max_len, *, label2id=None, multi_label=False):
    """Classification (label2id given) or regression (value) features."""
    features = []
    for example in examples:
        ids = _ids(tokenizer(example["text"], truncation=True, max_length=max_len))
        if label2id is None:
            label = float(example["value"])
        else:
            label = label_ids(example, label2id, multi_label)
        features.append({"input_ids": ids, "labels": label})
    return features


class PadCollator:
    """Right-pads input_ids (pad id) and attention_mask (0); token labels get -100.

    `token_labels`: labels are per token (text generation) rather than per
    example; `float_labels`: regression values or multi-label vectors.
    """

    def __init__(self, pad_token_id: int, *, token_labels: bool, float_labels: bool = False):
        self.pad_token_id = pad_token_id
        self.token_labels = token_labels
        self.float_labels = float_labels

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in batch)
        input_ids, attention, labels = [], [], []
        for item in batch:
            gap = width - len(item["input_ids"])
            input_ids.append(item["input_ids"] + [self.pad_token_id] * gap)
            attention.append([1] * len(item["input_ids"]) + [0] * gap)
            labels.append(item["labels"] + [IGNORE] * gap if self.token_labels else item["labels"])
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "attention_mask": torch.tensor(attention, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.float if self.float_labels else torch.long),
        }
