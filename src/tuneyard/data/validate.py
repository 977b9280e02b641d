"""Checking a whole dataset file: ``inspect_dataset`` describes it, ``load_examples`` reads it.

Both read the file once, record by record, and check every record against the shape of the
first; any problem (up to MAX_ISSUES are kept, all are counted) raises DatasetValidationError
with line-numbered issues. ``inspect_dataset`` keeps no records, so an upload of any size is
checked in constant memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FILE, IssueLog
from .readers import detect_format, iter_records
from .shapes import check_record, detect_shape, parse_number

MAX_LABELS_GUESSED = 50
"""An input_output dataset with at most this many distinct outputs may be a labelled one."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a valid dataset file holds."""

    file_format: str
    """jsonl, json, csv or parquet."""
    shape: str
    """One of shapes.SHAPES."""
    num_records: int
    labels: list[str] | None
    """Sorted labels of a classification dataset; for input_output, its distinct outputs when
    they look like labels (few, and repeated); otherwise None."""
    multi_label: bool
    """Whether some classification record has more than one label set to 1."""


def inspect_dataset(path: Path, *, filename: str | None = None) -> DatasetInfo:
    """Validate every record of the file and describe it; ``filename`` is the uploaded name."""
    info, _ = _scan(Path(path), filename=filename, keep=False)
    return info


def load_examples(path: Path, *, filename: str | None = None) -> list[dict[str, Any]]:
    """Validate the file and return its records normalized (see shapes)."""
    _, examples = _scan(Path(path), filename=filename, keep=True)
    return examples


@dataclass
class _Tally:
    """What is learnt about the dataset while its records go by."""

    shape: str | None = None
    count: int = 0
    label_keys: set[str] = field(default_factory=set)
    multi_label: bool = False
    outputs: set[str] | None = field(default_factory=set)  # distinct outputs, while few
    all_numeric: bool = True  # CSV: every completion so far parses as a number


def _scan(path: Path, *, filename: str | None,
          keep: bool) -> tuple[DatasetInfo, list[dict[str, Any]]]:
    file_format = detect_format(path, filename=filename)
    from_text = file_format == "csv"
    log = IssueLog()
    tally = _Tally()
    examples: list[dict[str, Any]] = []
    for location, record, problem in iter_records(path, file_format=file_format):
        if problem is not None:
            log.add(location, problem)
            continue
        tally.count += 1
        if tally.shape is None:
            tally.shape, why = detect_shape(record)
            if tally.shape is None:
                # Decide the shape from the next record instead, so the rest is still checked.
                log.add(location, why)
                continue
        normalized, problems = check_record(record, shape=tally.shape, from_text=from_text)
        for message in problems:
            log.add(location, message)
        if normalized is None:
            continue
        _learn(tally, record=record, normalized=normalized, from_text=from_text)
        if keep:
            examples.append(normalized)
    if tally.count == 0 and not log.total:
        log.add(FILE, "dataset has no records")
    log.raise_if_any()
    shape = tally.shape
    if from_text and shape == "prompt_completion" and tally.all_numeric:
        # CSV cells are all strings: numbers everywhere mean a regression dataset.
        shape = "regression"
        examples = [{"text": e["prompt"], "value": parse_number(e["completion"])}
                    for e in examples]
    info = DatasetInfo(file_format=file_format, shape=shape, num_records=tally.count,
                       labels=_labels(tally, shape), multi_label=tally.multi_label)
    return info, examples


def _learn(tally: _Tally, *, record: dict[str, Any], normalized: dict[str, Any],
           from_text: bool) -> None:
    if tally.shape == "classification":
        tally.label_keys.update(record["completion"])
        tally.multi_label = tally.multi_label or len(normalized["labels"]) > 1
    elif tally.shape == "input_output" and tally.outputs is not None:
        tally.outputs.add(normalized["completion"])
        if len(tally.outputs) > MAX_LABELS_GUESSED:
            tally.outputs = None  # too many to be labels; stop collecting them
    elif from_text and tally.shape == "prompt_completion" and tally.all_numeric:
        tally.all_numeric = parse_number(normalized["completion"]) is not None


def _labels(tally: _Tally, shape: str) -> list[str] | None:
    if shape == "classification":
        return sorted(tally.label_keys)
    if shape == "input_output" and tally.outputs is not None:
        # Outputs that repeat (fewer distinct ones than half the records) look like labels.
        if len(tally.outputs) < tally.count / 2:
            return sorted(tally.outputs)
    return None
