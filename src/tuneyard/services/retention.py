"""After each evaluation lands: the job's best checkpoint, early stopping, retention.

The rules themselves are tuneyard.policy's; this module applies them to a job's rows.
Checkpoint numbers are compared as ints and metric values as floats.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard import policy
from tuneyard.status import DEPLOYMENT_LIVE, JobStatus, TestStatus
from tuneyard.storage import ArtifactStore
from tuneyard.tables import Checkpoint, Deployment, TrainingJob
from tuneyard.training.params import parse_parameters


def metric_value(row: Checkpoint, metric: str) -> float | None:
    if row.test_status != TestStatus.DONE or not row.test_results:
        return None
    return policy.metric_number((row.test_results.get("aggregated_test_result") or {}).get(metric))


def after_evaluation(*, session: Session, store: ArtifactStore, job_id: str) -> None:
    job = session.get(TrainingJob, job_id)
    if job is None:
        return
    params = parse_parameters(job.hyper_parameters)
    rank = policy.ranking(metric_for_best_model=params.metric_for_best_model,
                          greater=params.greater_is_better, task_type=job.task_type)
    rows = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)
                                .order_by(Checkpoint.number)))
    values = {r.number: metric_value(r, rank.metric) for r in rows}
    order = policy.best_first(values.items(), greater=rank.greater)
    job.best_checkpoint = order[0] if order else None

    if job.status == JobStatus.RUNNING and not job.early_stopped and policy.stop_early(
            [v for v in values.values() if v is not None],
            patience=params.early_stopping_patience, greater=rank.greater):
        job.early_stopped = True

    busy = {r.number for r in rows if r.test_status in (TestStatus.PENDING, TestStatus.RUNNING)}
    busy |= set(session.scalars(select(Deployment.checkpoint).where(
        Deployment.training_job_id == job_id, Deployment.status.in_(DEPLOYMENT_LIVE))))
    keep = policy.checkpoints_to_keep(numbers=[r.number for r in rows], ranked=order,
                                      keep=params.keep_checkpoints, busy=busy)
    for r in rows:
        if r.number in keep or r.pruned:
            continue
        store.delete_prefix(r.storage_prefix)
        if r.archive_key:
            store.delete(r.archive_key)
        r.pruned = True
    session.commit()
