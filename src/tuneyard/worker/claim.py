"""Claiming jobs atomically, and heartbeats that prove a claim is still alive.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers each lock
a different row. SQLite has no row locks: a conditional UPDATE that only
succeeds if the row is still claimable makes the claim atomic (one writer at a
time), and the loser simply tries the next candidate.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from tuneyard.services.events import add_event
from tuneyard.status import JobStatus
from tuneyard.tables import TrainingJob


def _claimable(lapsed_before: float):
    # Pending jobs, and Running jobs whose worker stopped heartbeating (it died:
    # the job resumes from its latest checkpoint).
    return or_(
        TrainingJob.status == JobStatus.PENDING,
        and_(TrainingJob.status == JobStatus.RUNNING,
             or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < lapsed_before)),
    )


def claim_job(*, session: Session, worker_id: str, lapse_seconds: float) -> str | None:
    """Claim one job for `worker_id`; returns its id, or None if none is waiting."""
    now = time.time()
    condition = _claimable(now - lapse_seconds)
    if session.get_bind().dialect.name == "postgresql":
        job_id = session.scalar(
            select(TrainingJob.id).where(condition).order_by(TrainingJob.id)
            .limit(1).with_for_update(skip_locked=True)
        )
        candidates = [job_id] if job_id else []
    else:
        candidates = list(session.scalars(
            select(TrainingJob.id).where(condition).order_by(TrainingJob.id).limit(5)
        ))
    for job_id in candidates:
        claimed = session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, condition, TrainingJob.cancel_requested.is_(False))
            .values(status=JobStatus.RUNNING, worker_id=worker_id, heartbeat_at=now,
                    attempts=TrainingJob.attempts + 1, updated_at=int(now))
        ).rowcount
        if claimed == 1:
            job = session.get(TrainingJob, job_id)
            if job.started_at is None:
                job.started_at = int(now)
            add_event(session, job_id, "claimed",
                      f"claimed by worker {worker_id} (attempt {job.attempts})",
                      data={"worker": worker_id, "attempt": job.attempts})
            session.commit()
            return job_id
    session.commit()
    return None


def heartbeat(*, session: Session, job_id: str, worker_id: str) -> bool:
    """Refresh the claim; False when the job is gone or no longer ours."""
    touched = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.worker_id == worker_id,
               TrainingJob.status == JobStatus.RUNNING)
        .values(heartbeat_at=time.time())
    ).rowcount
    session.commit()
    return touched == 1
