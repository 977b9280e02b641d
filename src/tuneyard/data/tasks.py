"""Which dataset shapes can train which task, and records in the form a task's recipe reads.

Task types are Emissary v2's. A recipe reads one record form per task:

    text-generation  {"prompt", "completion"} or {"messages"}
    classification   {"text", "labels": [...]}
    regression       {"text", "value"}
    embedding        {"text1", "text2", "score"}
"""

from __future__ import annotations

from typing import Any

from .shapes import SHAPE_DESCRIPTIONS
from .validate import DatasetInfo

TASK_TYPES = ("text-generation", "classification", "regression", "embedding")

TASK_SHAPES = {
    "text-generation": ("prompt_completion", "input_output", "chat"),
    # input_output outputs are taken as string labels, one per record.
    "classification": ("classification", "input_output"),
    "regression": ("regression",),
    "embedding": ("pairs",),
}


TECHNIQUES = ("SFT", "DPO", "GRPO")
"""Training techniques: supervised fine-tuning, preference (DPO) and reinforcement (GRPO)."""

TECHNIQUE_SHAPES = {
    # DPO learns from pairs of answers; GRPO from prompts, the expected output
    # feeding the test functions that reward its own generations.
    "DPO": ("preference",),
    "GRPO": ("prompt_completion", "input_output"),
}


def task_fit_error(info: DatasetInfo, task_type: str, technique: str = "SFT") -> str | None:
    """None when a dataset of this shape can train the task, else a sentence saying why not."""
    return _fit_error(info.shape, task_type, technique)


def _fit_error(shape: str, task_type: str, technique: str = "SFT") -> str | None:
    if task_type not in TASK_SHAPES:
        return f"unknown task type {task_type!r}; expected one of {', '.join(TASK_TYPES)}"
    if technique in TECHNIQUE_SHAPES:
        if task_type != "text-generation":
            return f"{technique} trains text-generation models, not {task_type}"
        needed = TECHNIQUE_SHAPES[technique]
        if shape in needed:
            return None
        options = "; ".join(f"{s} {SHAPE_DESCRIPTIONS[s]}" for s in needed)
        return (f"{technique} needs a dataset of shape {' or '.join(needed)}, but this dataset "
                f"is {shape} {SHAPE_DESCRIPTIONS.get(shape, '')}; expected: {options}")
    needed = TASK_SHAPES[task_type]
    if shape in needed:
        return None
    options = "; ".join(f"{s} {SHAPE_DESCRIPTIONS[s]}" for s in needed)
    article = "an" if task_type[0] in "aeiou" else "a"
    return (f"{article} {task_type} task needs a dataset of shape {' or '.join(needed)}, but this "
            f"dataset is {shape} {SHAPE_DESCRIPTIONS.get(shape, '')}; expected: {options}")


def to_task_examples(examples: list[dict[str, Any]], *, shape: str,
                     task_type: str, technique: str = "SFT") -> list[dict[str, Any]]:
    """Normalized records (see shapes) of a dataset of ``shape``, in the task's record form
    (a DPO job's: the preference records as they are)."""
    error = _fit_error(shape, task_type, technique)
    if error:
        raise ValueError(error)
    if task_type == "classification" and shape == "input_output":
        return [{"text": e["prompt"], "labels": [e["completion"]]} for e in examples]
    # Every other fitting shape is normalized to its task's form already.
    return [dict(e) for e in examples]
