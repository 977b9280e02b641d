"""Choosing and keeping checkpoints: the best one, best-k retention, early stopping.

Runs after each evaluation lands. Checkpoint numbers are compared as ints and
metric values as floats (never as strings: see transformers #27138), and the
best checkpoint is never pruned (transformers #37196).
"""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.storage import ArtifactStore
from tuneyard.tables import Checkpoint, Deployment, TrainingJob

# The metric that picks the best checkpoint when the user names none.
DEFAULT_METRIC = {
    "text-generation": "loss",
    "classification": "accuracy",
    "regression": "mae",
    "embedding": "spearman",
}
LOWER_IS_BETTER = {"loss", "perplexity", "mse", "mae", "rmse", "hamming_loss", "eval_seconds",
                   "regression_mae"}
ACTIVE_DEPLOYMENT = ("Pending", "Deploying", "Deployed")


def greater_is_better(metric: str, explicit: bool | None) -> bool:
    if explicit is not None:
        return explicit
    return metric not in LOWER_IS_BETTER and not metric.endswith("loss")


def metric_value(row: Checkpoint, metric: str) -> float | None:
    if row.test_status != "done" or not row.test_results:
        return None
    raw = (row.test_results.get("aggregated_test_result") or {}).get(metric)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def ranked(rows: list[Checkpoint], metric: str, greater: bool) -> list[Checkpoint]:
    """Evaluated rows, best first; ties go to the earlier checkpoint."""
    scored = [(metric_value(r, metric), r) for r in rows]
    scored = [(v, r) for v, r in scored if v is not None]
    scored.sort(key=lambda vr: ((-vr[0] if greater else vr[0]), vr[1].number))
    return [r for _, r in scored]


def after_evaluation(*, session: Session, store: ArtifactStore, job_id: str) -> None:
    job = session.get(TrainingJob, job_id)
    if job is None:
        return
    params = job.hyper_parameters or {}
    metric = params.get("metric_for_best_model") or DEFAULT_METRIC[job.task_type]
    greater = greater_is_better(metric, params.get("greater_is_better"))
    rows = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)
                                .order_by(Checkpoint.number)))
    order = ranked(rows, metric, greater)
    job.best_checkpoint = order[0].number if order else None

    patience = int(params.get("early_stopping_patience") or 0)
    if patience and job.status == "Running" and not job.early_stopped:
        evaluated = [r for r in rows if metric_value(r, metric) is not None]
        best_value, since_best = None, 0
        for r in evaluated:
            value = metric_value(r, metric)
            if best_value is None or (value > best_value if greater else value < best_value):
                best_value, since_best = value, 0
            else:
                since_best += 1
        if since_best >= patience:
            job.early_stopped = True

    keep = int(params.get("keep_checkpoints") or 0)
    if keep > 0 and rows:
        protected = {rows[-1].number}  # the latest: training resumes from it
        protected |= {r.number for r in order[:keep]}
        protected |= {r.number for r in rows if r.test_status in ("pending", "running")}
        protected |= set(session.scalars(select(Deployment.checkpoint).where(
            Deployment.training_job_id == job_id, Deployment.status.in_(ACTIVE_DEPLOYMENT))))
        for r in rows:
            if r.number in protected or r.pruned:
                continue
            store.delete_prefix(r.storage_prefix)
            if r.archive_key:
                store.delete(r.archive_key)
            r.pruned = True
    session.commit()
