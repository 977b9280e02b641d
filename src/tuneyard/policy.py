"""The platform's rules about a job's checkpoints and its end, each written once.

- Ranking: which metric picks a job's best checkpoint, which direction is better,
  and the order of checkpoints best first (ties go to the earlier checkpoint).
- Early stopping: stop after `early_stopping_patience` checkpoints without an
  improvement on the best so far; the training loop applies it to its eval loss,
  evaluation to the metric it computes, with this one rule.
- Retention (`keep_checkpoints`): the weights of the best k plus the latest are
  kept, and never those of a checkpoint still being evaluated or deployed.
- Timeouts (`timeout_seconds`): counted from the job's start; a job past it ends
  `TimedOut` with `timeout_reason` as its error, whoever notices first.

Pure Python: the API server, the CLI, the worker and the training loop import it.
Metric values are compared as floats, never as strings (transformers #27138);
retention never drops the best checkpoint (transformers #37196).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneyard.status import JobStatus

DEFAULT_METRIC = {
    "text-generation": "loss",
    "classification": "accuracy",
    "regression": "mae",
    "embedding": "spearman",
}
"""The metric that picks the best checkpoint when the user names none."""

LOWER_IS_BETTER = frozenset({"loss", "perplexity", "mse", "mae", "rmse", "hamming_loss",
                             "eval_seconds", "regression_mae"})
"""Metrics where smaller is better (as is any name ending in "loss")."""

OWN_EVAL_METRICS = frozenset({"eval_seconds"})
"""Metrics whose own name starts with `eval_` (not the Trainer's prefix)."""

TIMED_OUT = JobStatus.TIMED_OUT
"""The one status of a job that ran past its timeout_seconds."""

TIMEOUT_GRACE_SECONDS = 30.0
"""How long past its deadline the worker lets a job's training process stop on its own
(publishing the checkpoints it has in flight) before ending its process group."""


def metric_key(metric: str | None, *, task_type: str | None = None) -> str:
    """The name a metric has in test results: `eval_loss` is `loss` (the Trainer's
    `eval_` prefix is optional, as in transformers); no name at all is the task's
    default metric."""
    name = (metric or "").strip()
    if name.startswith("eval_") and name not in OWN_EVAL_METRICS:
        name = name.removeprefix("eval_")
    return name or DEFAULT_METRIC.get(task_type or "", "loss")


def greater_is_better(metric: str, explicit: bool | None = None) -> bool:
    """Whether a larger `metric` is better: as the user said, else not for losses."""
    if explicit is not None:
        return explicit
    name = metric_key(metric)
    return name not in LOWER_IS_BETTER and not name.endswith("loss")


@dataclass(frozen=True)
class Ranking:
    """How a job's checkpoints compare: by `metric`, larger better when `greater`."""

    metric: str
    greater: bool


def ranking(*, metric_for_best_model: str | None, greater: bool | None,
            task_type: str | None = None) -> Ranking:
    """The ranking a job's parameters ask for (`metric_for_best_model`, `greater_is_better`)."""
    name = metric_key(metric_for_best_model, task_type=task_type)
    return Ranking(metric=name, greater=greater_is_better(name, greater))


def metric_number(raw: Any) -> float | None:
    """A metric value as a finite float (results carry strings), or None."""
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def best_first(scores: Iterable[tuple[int, float | None]], *, greater: bool) -> list[int]:
    """Checkpoint numbers with a value, best first; ties go to the earlier checkpoint."""
    scored = [(value, number) for number, value in scores if value is not None]
    scored.sort(key=lambda vn: ((-vn[0] if greater else vn[0]), vn[1]))
    return [number for _, number in scored]


def stop_early(values: Sequence[float], *, patience: int, greater: bool) -> bool:
    """Whether the last `patience` of `values` (checkpoint order) all failed to improve on
    the best before them; patience 0 never stops."""
    if patience <= 0:
        return False
    best, since_best = None, 0
    for value in values:
        if best is None or (value > best if greater else value < best):
            best, since_best = value, 0
        else:
            since_best += 1
    return since_best >= patience


def checkpoints_to_keep(*, numbers: Sequence[int], ranked: Sequence[int], keep: int,
                        busy: Iterable[int] = ()) -> set[int]:
    """The checkpoints whose weights stay under `keep_checkpoints=keep` (0 keeps all):
    the best `keep` of `ranked`, the latest of `numbers` (training resumes from it)
    and every `busy` one (being evaluated, or deployed)."""
    if keep <= 0 or not numbers:
        return set(numbers)
    return {max(numbers), *ranked[:keep], *busy}


def timed_out(*, timeout_seconds: float, started_at: float | None, now: float,
              grace: float = 0.0) -> bool:
    """Whether a job started at `started_at` (unix seconds) is past its timeout (plus
    `grace`) at `now`; a timeout of 0 is none."""
    return bool(timeout_seconds) and started_at is not None and \
        now - started_at > timeout_seconds + grace


def timeout_reason(timeout_seconds: float) -> str:
    """The error a timed-out job carries."""
    return f"the job exceeded timeout_seconds={timeout_seconds:g}"


__all__ = [
    "DEFAULT_METRIC", "LOWER_IS_BETTER", "TIMED_OUT", "TIMEOUT_GRACE_SECONDS", "Ranking",
    "best_first", "checkpoints_to_keep", "greater_is_better", "metric_key", "metric_number",
    "ranking", "stop_early", "timed_out", "timeout_reason",
]
