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
    doomed = [r for r in rows if r.number not in keep and not r.pruned]
    for r in doomed:
        r.pruned = True
    # Pruned first, in this transaction: the flag is the schedule of the files'
    # deletion. Once it is committed nobody lists, deploys or evaluates them,
    # and a crash before the deletion below only leaves files that
    # `delete_pruned_files` removes later; never a row whose files are gone.
    session.commit()
    for r in doomed:
        delete_checkpoint_files(store, r)


def delete_checkpoint_files(store: ArtifactStore, row: Checkpoint) -> None:
    store.delete_prefix(row.storage_prefix)
    if row.archive_key:
        store.delete(row.archive_key)


def delete_pruned_files(*, session: Session, store: ArtifactStore) -> int:
    """Delete the files of pruned checkpoints that a crash left behind (after
    the row was marked, before its files were gone); returns how many had any."""
    count = 0
    for row in session.scalars(select(Checkpoint).where(Checkpoint.pruned.is_(True))):
        if store.list(row.storage_prefix) or (row.archive_key and store.exists(row.archive_key)):
            delete_checkpoint_files(store, row)
            count += 1
    return count
