"""Choosing examples: the train/test split, downsampling, and rebalancing classification labels.

`choose_examples` applies them, in that order, exactly once per job: the worker's training
process and its evaluations both call it, and the trainer trains on every record it returns.
Every choice is made by a ``random.Random(seed)``, so the same examples and seed always give
the same result: a resumed or repeated job trains and tests on the same records. Chosen
examples keep their original order, except where rebalancing adds copies.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

DEFAULT_TEST_SPLIT = 0.1
"""Share of the training dataset held out for testing when a job names no test dataset."""

RATIO_TOLERANCE = 0.01
"""How far rebalance ratios may sum from 1 (users write 0.33, 0.33, 0.33)."""


def choose_examples(train: list, test: list | None, *, test_fraction: float,
                    downsample_percent: float, rebalance_spec: dict[str, float | int] | None,
                    seed: int) -> tuple[list, list]:
    """``(train, test)`` for a job: ``test`` as given, else a ``test_fraction`` share held
    out of ``train``; then ``downsample_percent`` of the training records kept and, for
    classification, the labels rebalanced to ``rebalance_spec``. Raises ``ValueError`` with
    a message for the user.
    """
    if test is None:
        if len(train) < 2:
            raise ValueError("the training set needs at least 2 records to hold out a test split")
        train, test = split_examples(train, test_fraction=test_fraction, seed=seed)
    if downsample_percent < 100:
        train = downsample(train, percent=downsample_percent, seed=seed)
    if rebalance_spec:
        train = rebalance(train, spec=rebalance_spec, seed=seed)
    if not train:
        raise ValueError("the training set is empty after splitting and downsampling")
    return train, test


def normalize_split_ratio(value: float | int | None) -> float:
    """The test share as a fraction, from a fraction (0.2, the SDK's form) or a percentage (20).

    The Emissary SDK contract shows ``train_test_split_ratio: 0.2`` and Emissary v2 documents
    a percentage (``20``); a value below 1 cannot be a sensible percentage, so both can be read.
    """
    if value is None:
        return DEFAULT_TEST_SPLIT
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if 0 < value < 1:
            return float(value)
        if 1 <= value <= 99:
            return value / 100
    raise ValueError("train_test_split_ratio must be a fraction between 0 and 1 (e.g. 0.2) or a "
                     f"percentage between 1 and 99 (e.g. 20), got {value!r}")


def split_examples(examples: list, *, test_fraction: float, seed: int) -> tuple[list, list]:
    """``(train, test)``: a ``test_fraction`` share (at least one example each) held out."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    if len(examples) < 2:
        raise ValueError(f"cannot split {len(examples)} example(s) into a train and a test set; "
                         "the dataset needs at least 2 records")
    n = len(examples)
    n_test = min(max(round(n * test_fraction), 1), n - 1)
    test_indices = set(random.Random(seed).sample(range(n), n_test))
    train = [e for i, e in enumerate(examples) if i not in test_indices]
    test = [e for i, e in enumerate(examples) if i in test_indices]
    return train, test


def downsample(examples: list, *, percent: float, seed: int) -> list:
    """``percent`` (0 < percent <= 100) of the examples, at least one, chosen by ``seed``."""
    if isinstance(percent, bool) or not 0 < percent <= 100:
        raise ValueError(f"downsample percent must be above 0 and at most 100, got {percent!r}")
    if not examples:
        return []
    n = len(examples)
    keep = min(max(round(n * percent / 100), 1), n)
    chosen = set(random.Random(seed).sample(range(n), keep))
    return [e for i, e in enumerate(examples) if i in chosen]


def rebalance(examples: list[dict[str, Any]], *, spec: dict[str, float | int],
              seed: int) -> list[dict[str, Any]]:
    """Resample classification examples (``{"labels": [...]}``, by first label) to ``spec``.

    ``spec`` maps labels to ratios (summing to 1: each label gets that share of the original
    total, so the total stays; labels not named get no share) or to counts (whole numbers:
    exactly that many of each named label; labels not named are kept as they are). Examples
    are drawn without replacement when a label shrinks; a growing label keeps all of its
    examples and draws the extra ones with replacement. The result is shuffled by ``seed``.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, example in enumerate(examples):
        labels = example.get("labels") if isinstance(example, dict) else None
        if not labels:
            raise ValueError(f"example {index + 1} has no labels; only classification "
                             "examples can be rebalanced")
        groups[labels[0]].append(example)
    unknown = sorted(set(spec) - set(groups))
    if unknown:
        raise ValueError(f"rebalance names label(s) not in the dataset: {', '.join(unknown)} "
                         f"(labels: {', '.join(sorted(groups))})")
    targets, keep_unnamed = _targets(spec, total=len(examples))
    rng = random.Random(seed)
    result: list[dict[str, Any]] = []
    for label in sorted(groups):
        have = groups[label]
        want = targets.get(label, len(have) if keep_unnamed else 0)
        if want <= len(have):
            chosen = sorted(rng.sample(range(len(have)), want))
            result.extend(have[i] for i in chosen)
        else:
            result.extend(have)
            result.extend(rng.choices(have, k=want - len(have)))
    rng.shuffle(result)
    return result


def _targets(spec: dict[str, float | int], *, total: int) -> tuple[dict[str, int], bool]:
    """How many examples each named label should end up with; whether unnamed ones stay."""
    values = list(spec.values())
    if not spec or any(isinstance(v, bool) or not isinstance(v, int | float) or not
                       math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"rebalance must map labels to ratios summing to 1 or to counts, "
                         f"got {spec!r}")
    if all(isinstance(v, int) for v in values):
        return dict(spec), True
    if abs(sum(values) - 1) <= RATIO_TOLERANCE:
        return _shares(spec, total=total), False
    if all(float(v).is_integer() for v in values):
        return {label: int(v) for label, v in spec.items()}, True  # counts sent as 300.0
    raise ValueError(f"rebalance ratios must sum to 1 (got {sum(values):g}); use whole numbers "
                     "for counts per label")


def _shares(spec: dict[str, float | int], *, total: int) -> dict[str, int]:
    # Largest remainders, so the rounded counts add up to exactly the original total.
    weight = sum(spec.values())
    exact = {label: total * v / weight for label, v in spec.items()}
    counts = {label: math.floor(x) for label, x in exact.items()}
    short = total - sum(counts.values())
    for label in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:short]:
        counts[label] += 1
    return counts
