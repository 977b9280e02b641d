"""The checkpoint table: main metrics per task, the best checkpoint marked,
the baseline (the base model before fine-tuning) as the first row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from tuneyard.policy import best_first, metric_number, ranking
from tuneyard.status import TestStatus
from tuneyard.training.params import parse_parameters

from ._output import when

if TYPE_CHECKING:
    from tuneyard.client import Checkpoint, TrainingJob

# The metrics worth a column, per task type, in order; the rest are in --json.
MAIN_METRICS = {
    "text-generation": ("loss", "perplexity", "token_accuracy", "exact_match", "rouge_l"),
    "classification": ("loss", "accuracy", "macro_f1", "micro_f1"),
    "regression": ("mse", "mae", "r2", "spearman"),
    "embedding": ("spearman", "pearson", "mse"),
}
MAX_COLUMNS = 5


def metric_columns(job: TrainingJob | None, checkpoints: list[Checkpoint]) -> list[str]:
    present: list[str] = []
    for ckpt in checkpoints:
        present += [k for k in ckpt.metrics if k not in present]
    if job is not None and job.baseline_test_results:
        present += [k for k in (job.baseline_test_results.aggregated_test_result or {})
                    if k not in present]
    task = job.task_type if job is not None else None
    preferred = MAIN_METRICS.get(task or "", ()) or tuple(
        m for metrics in MAIN_METRICS.values() for m in metrics)
    chosen = [m for m in dict.fromkeys(preferred) if m in present]
    chosen = chosen or [m for m in present if m not in ("num_examples", "eval_seconds")]
    if "loss" not in chosen and any(c.eval_loss is not None for c in checkpoints):
        # The training loop's own test-set loss arrives before the evaluation does.
        chosen.insert(0, "eval_loss")
    return chosen[:MAX_COLUMNS]


def value(ckpt: Checkpoint, metric: str) -> Any:
    """A metric of a checkpoint: from its test results, else its own field (eval_loss)."""
    found = ckpt.metrics.get(metric)
    return found if found is not None else getattr(ckpt, metric, None)


def best_checkpoint(job: TrainingJob | None, checkpoints: list[Checkpoint]) -> int | None:
    """The server's `best_checkpoint`, else the best by the job's own ranking (policy)."""
    if job is not None and job.best_checkpoint is not None:
        return job.best_checkpoint
    params = parse_parameters(job.hyper_parameters if job is not None else None,
                              ignore_unknown=True)
    rank = ranking(metric_for_best_model=params.metric_for_best_model,
                   greater=params.greater_is_better,
                   task_type=job.task_type if job is not None else None)
    metric = rank.metric
    if metric == "loss" and not any("loss" in c.metrics for c in checkpoints):
        metric = "eval_loss"  # test results have not landed: rank by the training eval loss
    order = best_first(((c.checkpoint, metric_number(value(c, metric))) for c in checkpoints),
                       greater=rank.greater)
    return order[0] if order else None


def checkpoint_table(job: TrainingJob | None, checkpoints: list[Checkpoint]) -> Table:
    columns = metric_columns(job, checkpoints)
    best = best_checkpoint(job, checkpoints)
    table = Table("", "#", "step", "epoch", *columns, "tests", "created",
                  title="checkpoints", title_justify="left", header_style="bold",
                  caption=None if checkpoints else "no checkpoints yet", caption_justify="left")
    if job is not None and job.baseline_test_results:
        base = job.baseline_test_results.aggregated_test_result or {}
        table.add_row("", "base", "0", "0", *(_fmt(base.get(m)) for m in columns), "done", "",
                      style="dim")
    for ckpt in checkpoints:
        mark = "★" if ckpt.checkpoint == best else ""
        table.add_row(mark, str(ckpt.checkpoint), _fmt(ckpt.step), _fmt(ckpt.epoch),
                      *(_fmt(value(ckpt, m)) for m in columns), _test_state(ckpt),
                      when(ckpt.created_at), style="bold" if mark else None)
    return table


def _test_state(ckpt: Checkpoint) -> str:
    if ckpt.test_status == TestStatus.FAILED:
        return f"[red]failed[/red] {ckpt.test_error or ''}".strip()
    if ckpt.test_status:
        return ckpt.test_status
    return TestStatus.DONE if ckpt.test_results else TestStatus.PENDING


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    number = _number(value)
    if number is None:
        return str(value)
    if number.is_integer() and abs(number) < 1e9:
        return str(int(number))
    return f"{number:.4g}"
