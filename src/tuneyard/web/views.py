"""Read-side helpers for the pages: dataset previews, results files, curves, the log.

Everything here reads rows through `tuneyard.services` and files through the
artifact store; nothing is fetched over HTTP from our own API.
"""

from __future__ import annotations

import difflib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from tuneyard.data.readers import iter_records
from tuneyard.services.events import list_events
from tuneyard.status import JOB_FINAL, TestStatus
from tuneyard.storage import ArtifactStore, ObjectNotFound
from tuneyard.tables import Checkpoint, Dataset, TrainingJob

PREVIEW_RECORDS = 5
MAX_RESULT_ROWS = 2000  # rows rendered on a results page; the download has them all
# Metrics that describe the run rather than the model: shown, never plotted or ranked.
BOOKKEEPING = ("num_examples", "eval_seconds", "generated_samples")
LOWER_IS_BETTER = ("loss", "perplexity", "mae", "mse", "error", "seconds")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is the better one (colours the deltas)."""
    return any(word in metric for word in LOWER_IS_BETTER)


# -- datasets ---------------------------------------------------------------------------

def dataset_preview(store: ArtifactStore, dataset: Dataset,
                    count: int = PREVIEW_RECORDS) -> list[dict]:
    """The first `count` records of a stored dataset, as uploaded."""
    local = store.local_path(dataset.storage_key)
    with tempfile.TemporaryDirectory() as work:
        if local is None:
            local = Path(work) / f"data.{dataset.file_format}"
            store.download_to(dataset.storage_key, local)
        items = iter_records(local, file_format=dataset.file_format)
        return [record for _where, record, _problem in islice(items, count) if record]


# -- results files ----------------------------------------------------------------------

def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_rows(store: ArtifactStore, document: dict | None) -> list[dict] | None:
    """The per-example rows of an evaluation (its results JSONL), or None if there are none."""
    key = (document or {}).get("general_test_result_key")
    if not key:
        return None
    try:
        text = store.read_bytes(key).decode("utf-8")
    except ObjectNotFound:
        return None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_details(store: ArtifactStore, document: dict | None) -> dict:
    key = (document or {}).get("details_key")
    if not key:
        return {}
    try:
        return json.loads(store.read_bytes(key))
    except (ObjectNotFound, ValueError):
        return {}


def is_failure(row: dict) -> bool:
    """A row the model got wrong: `correct` false, or (with no verdict) a score below 1."""
    if row.get("correct") is not None:
        return row["correct"] is False
    score = _number(row.get("score"))
    return score is not None and score < 1


def diff_html(expected: Any, predicted: Any) -> Markup:
    """Expected vs predicted, word by word: deletions struck, insertions underlined."""
    a = "" if expected is None else str(expected)
    b = "" if predicted is None else str(predicted)
    left, right = a.split(" "), b.split(" ")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right,
                                                      autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(" ".join(left[i1:i2])))
            continue
        if i2 > i1:
            out.append(Markup('<del>{}</del>').format(" ".join(left[i1:i2])))
        if j2 > j1:
            out.append(Markup('<ins>{}</ins>').format(" ".join(right[j1:j2])))
    return Markup(" ").join(out)


# -- checkpoints and curves ---------------------------------------------------------------

@dataclass
class CheckpointRow:
    number: int  # 0 is the baseline (the base model before training)
    step: int | None
    epoch: float | None
    eval_loss: float | None
    status: str
    error: str | None
    metrics: dict[str, float | None]
    pruned: bool = False
    best: bool = False
    has_results: bool = False
    downloadable: bool = False


@dataclass
class JobTable:
    metrics: list[str]
    rows: list[CheckpointRow] = field(default_factory=list)  # the baseline first, if any

    @property
    def checkpoints(self) -> list[CheckpointRow]:
        return [r for r in self.rows if r.number > 0]


def _metrics(document: dict | None) -> dict[str, float | None]:
    return {k: _number(v) for k, v in
            ((document or {}).get("aggregated_test_result") or {}).items()}


def job_table(job: TrainingJob, checkpoints: list[Checkpoint]) -> JobTable:
    rows = []
    baseline = job.baseline_test_results
    if baseline:
        rows.append(CheckpointRow(
            number=0, step=0, epoch=0.0, eval_loss=None,
            status=baseline.get("status") or ("done" if "aggregated_test_result" in baseline
                                              else "pending"),
            error=baseline.get("error"), metrics=_metrics(baseline),
            has_results=bool(baseline.get("general_test_result_key"))))
    for c in checkpoints:
        rows.append(CheckpointRow(
            number=c.number, step=c.step, epoch=c.epoch, eval_loss=c.eval_loss,
            status=c.test_status, error=c.test_error, metrics=_metrics(c.test_results),
            pruned=c.pruned, best=c.number == job.best_checkpoint,
            has_results=bool((c.test_results or {}).get("general_test_result_key")),
            downloadable=bool(c.archive_key) and not c.pruned))
    names: list[str] = []
    for row in rows:
        names += [n for n in row.metrics if n not in names and n not in BOOKKEEPING]
    return JobTable(metrics=names, rows=rows)


def curves(job: TrainingJob, checkpoints: list[Checkpoint]) -> dict:
    """What the job page plots: training loss and learning rate per logging step,
    eval loss and each metric per checkpoint step. Polled while the job runs, so it is
    small and flat."""
    train = [p for p in (job.training_loss or []) if _number(p.get("loss")) is not None]
    steps = [p.get("step") if p.get("step") is not None else i + 1 for i, p in enumerate(train)]
    rates = [p for p in (job.training_metrics or [])
             if _number(p.get("learning_rate")) is not None and p.get("step") is not None]
    table = job_table(job, checkpoints)
    done = [c for c in table.checkpoints if c.step is not None]
    return {
        "status": job.status,
        "progress": job.progress,
        "final": job.status in JOB_FINAL and all(
            c.status in (TestStatus.DONE, TestStatus.FAILED) for c in table.checkpoints),
        "train": [steps, [float(p["loss"]) for p in train]],
        "lr": [[p["step"] for p in rates], [float(p["learning_rate"]) for p in rates]],
        "eval": [[c.step for c in done if c.eval_loss is not None],
                 [c.eval_loss for c in done if c.eval_loss is not None]],
        "metrics": {name: [[c.step for c in done if c.metrics.get(name) is not None],
                           [c.metrics[name] for c in done if c.metrics.get(name) is not None]]
                    for name in table.metrics},
        "checkpoints": len(table.checkpoints),
        "tested": sum(1 for c in table.checkpoints if c.status == TestStatus.DONE),
    }


# -- the log panel ------------------------------------------------------------------------

@dataclass
class LogLine:
    at: float | None
    text: str
    level: str = "info"


def _when(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


MAX_LOG_LINES = 300


def job_log(job: TrainingJob, checkpoints: list[Checkpoint], *,
            session: Session | None = None) -> list[LogLine]:
    """The job's log lines, oldest first: its recorded events (the same rows as `GET
    …/training-jobs/{id}/events`), else — for a job older than the events table —
    the story its row and checkpoints tell."""
    if session is not None:
        events = list_events(session=session, job_id=job.id, limit=MAX_LOG_LINES,
                             newest_first=True)
        if events:
            return [LogLine(_when(e.created_at), e.message,
                            "error" if e.level == "error" else "info")
                    for e in reversed(events)]
    return derived_log(job, checkpoints)


def derived_log(job: TrainingJob, checkpoints: list[Checkpoint]) -> list[LogLine]:
    """Status changes, checkpoints and their evaluations, from the rows."""
    lines = [LogLine(_when(job.created_at), f"created: {job.base_model}, {job.task_type}")]
    if job.started_at:
        lines.append(LogLine(_when(job.started_at),
                             f"started (attempt {job.attempts or 1})"))
    for c in checkpoints:
        lines.append(LogLine(_when(c.created_at),
                             f"checkpoint {c.number} at step {c.step}"
                             + (f", eval loss {c.eval_loss:.4f}" if c.eval_loss is not None
                                else "")))
        if c.test_status == TestStatus.DONE:
            lines.append(LogLine(_when(c.updated_at), f"checkpoint {c.number} tested"))
        elif c.test_status == TestStatus.FAILED:
            lines.append(LogLine(_when(c.updated_at),
                                 f"checkpoint {c.number} test failed: {c.test_error}", "error"))
        if c.pruned:
            lines.append(LogLine(_when(c.updated_at),
                                 f"checkpoint {c.number} pruned (keep_checkpoints)"))
    if job.status in JOB_FINAL:
        text = f"finished: {job.status}" + (f": {job.error}" if job.error else "")
        lines.append(LogLine(_when(job.finished_at), text,
                             "error" if job.error or job.status != "Success" else "info"))
    elif job.cancel_requested:
        lines.append(LogLine(time.time(), "cancel requested"))
    lines.sort(key=lambda line: line.at or 0)
    return lines
