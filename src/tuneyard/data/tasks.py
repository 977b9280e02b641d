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


def task_fit_error(info: DatasetInfo, task_type: str) -> str | None:
    """None when a dataset of this shape can train the task, else a sentence saying why not."""
    return _fit_error(info.shape, task_type)


def _fit_error(shape: str, task_type: str) -> str | None:
    if task_type not in TASK_SHAPES:
        return f"unknown task type {task_type!r}; expected one of {', '.join(TASK_TYPES)}"
    needed = TASK_SHAPES[task_type]
    if shape in needed:
        return None
    options = "; ".join(f"{s} {SHAPE_DESCRIPTIONS[s]}" for s in needed)
    article = "an" if task_type[0] in "aeiou" else "a"
    return (f"{article} {task_type} task needs a dataset of shape {' or '.join(needed)}, but this "
            f"dataset is {shape} {SHAPE_DESCRIPTIONS.get(shape, '')}; expected: {options}")


def to_task_examples(examples: list[dict[str, Any]], *, shape: str,
                     task_type: str) -> list[dict[str, Any]]:
    """Normalized records (see shapes) of a dataset of ``shape``, in the task's record form."""
    error = _fit_error(shape, task_type)
    if error:
        raise ValueError(error)
    if task_type == "classification" and shape == "input_output":
        return [{"text": e["prompt"], "labels": [e["completion"]]} for e in examples]
    # Every other fitting shape is normalized to its task's form already.
    return [dict(e) for e in examples]
