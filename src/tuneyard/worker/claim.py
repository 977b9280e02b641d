"""Claiming jobs atomically, and heartbeats that prove a claim is still alive.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers each lock
a different row. SQLite has no row locks: a conditional UPDATE that only
succeeds if the row is still claimable makes the claim atomic (one writer at a
time), and the loser simply tries the next candidate.

Claims are fair across users: a job resumed after its worker was lost comes
first, then the job of the user with the fewest running jobs, and among those
the user served least recently (whose latest job started earliest), oldest
job first. One user's hundred queued jobs thus take turns with another's one.

A finished job's leftover evaluations (a crash cut them short) are claimed the
same way, on their own columns (`eval_worker_id`, `eval_heartbeat_at`).
"""

from __future__ import annotations

import time

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from tuneyard.services.events import add_event
from tuneyard.status import JOB_FINAL, JobStatus, TestStatus
from tuneyard.tables import Checkpoint, TrainingJob

DEFAULT_MAX_ATTEMPTS = 3


def _lapsed(lapsed_before: float):
    return and_(TrainingJob.status == JobStatus.RUNNING,
                or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < lapsed_before))


def _claimable(lapsed_before: float):
    # Pending jobs, and Running jobs whose worker stopped heartbeating (it died:
    # the job resumes from its latest checkpoint).
    return or_(TrainingJob.status == JobStatus.PENDING, _lapsed(lapsed_before))


def _fair_order(lapsed_before: float):
    """ORDER BY terms: resumed jobs, fewest running per user, least recently served."""
    other = aliased(TrainingJob)
    running = (select(func.count()).select_from(other)
               .where(other.created_by == TrainingJob.created_by,
                      other.status == JobStatus.RUNNING, other.heartbeat_at >= lapsed_before)
               .scalar_subquery())
    served = (select(func.coalesce(func.max(other.started_at), 0))
              .where(other.created_by == TrainingJob.created_by).scalar_subquery())
    resumed_first = case((TrainingJob.status == JobStatus.RUNNING, 0), else_=1)
    return resumed_first, running, served, TrainingJob.id


def claim_job(*, session: Session, worker_id: str, lapse_seconds: float,
              max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> str | None:
    """Claim one job for `worker_id`; returns its id, or None if none is waiting.

    A lapsed job that has already been started `max_attempts` times is not
    started again: it is recorded as Failed (its worker keeps dying with it).
    """
    now = time.time()
    lapsed_before = now - lapse_seconds
    condition = _claimable(lapsed_before)
    query = select(TrainingJob.id, TrainingJob.attempts).where(condition) \
        .order_by(*_fair_order(lapsed_before))
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(query.limit(1).with_for_update(skip_locked=True,
                                                             of=TrainingJob)).first()
        candidates = [row] if row else []
    else:
        candidates = list(session.execute(query.limit(5)))
    for job_id, attempts in candidates:
        if attempts >= max_attempts and _give_up(session, job_id, lapsed_before, attempts):
            continue
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


def _give_up(session: Session, job_id: str, lapsed_before: float, attempts: int) -> bool:
    """Fail a job whose attempts are used up; True if it was (it is not claimed then)."""
    now = time.time()
    return session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id, _lapsed(lapsed_before))
        .values(status=JobStatus.FAILED, finished_at=int(now), updated_at=int(now),
                worker_id=None, heartbeat_at=None,
                error=f"the job was started {attempts} times and its worker was lost each "
                      "time (its heartbeat lapsed); it is not started again")
    ).rowcount == 1


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


# -- evaluations left over by a crash ---------------------------------------
# Evaluation claims are bookkeeping, not a change the job's reader sees.
_UNCHANGED = TrainingJob.updated_at


def _evaluation_left(job_id_column):
    return exists().where(Checkpoint.job_id == job_id_column, Checkpoint.pruned.is_(False),
                          Checkpoint.test_status.in_((TestStatus.PENDING, TestStatus.RUNNING)))


def claim_evaluation(*, session: Session, worker_id: str, lapse_seconds: float) -> str | None:
    """Claim a finished job whose evaluations are unfinished and unowned (the
    process that ran them died with its worker); returns its id, or None.

    Its evaluations marked running were cut short: they go back to pending."""
    now = time.time()
    condition = and_(TrainingJob.status.in_(tuple(JOB_FINAL)),
                     or_(TrainingJob.eval_heartbeat_at.is_(None),
                         TrainingJob.eval_heartbeat_at < now - lapse_seconds),
                     _evaluation_left(TrainingJob.id))
    candidates = list(session.scalars(
        select(TrainingJob.id).where(condition).order_by(TrainingJob.id).limit(5)))
    for job_id in candidates:
        claimed = session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id, condition)
            .values(eval_worker_id=worker_id, eval_heartbeat_at=now, updated_at=_UNCHANGED)
        ).rowcount
        if claimed == 1:
            reset_cut_short(session, job_id)
            session.commit()
            return job_id
    session.commit()
    return None


def take_evaluation(*, session: Session, job_id: str, worker_id: str) -> None:
    """The worker that (re)starts a job's training owns its evaluations too."""
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id)
                    .values(eval_worker_id=worker_id, eval_heartbeat_at=time.time(),
                            updated_at=_UNCHANGED))
    reset_cut_short(session, job_id)
    session.commit()


def reset_cut_short(session: Session, job_id: str) -> None:
    # An evaluation cut short by a crash starts over.
    session.execute(update(Checkpoint).where(
        Checkpoint.job_id == job_id, Checkpoint.test_status == TestStatus.RUNNING)
        .values(test_status=TestStatus.PENDING))


def evaluation_heartbeat(*, session: Session, job_id: str, worker_id: str) -> bool:
    """Refresh the evaluation claim; False when it is gone or no longer ours."""
    touched = session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id,
                                  TrainingJob.eval_worker_id == worker_id)
        .values(eval_heartbeat_at=time.time(), updated_at=_UNCHANGED)
    ).rowcount
    session.commit()
    return touched == 1


def release_evaluation(*, session: Session, job_id: str, worker_id: str) -> None:
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                              TrainingJob.eval_worker_id == worker_id)
                    .values(eval_worker_id=None, eval_heartbeat_at=None, updated_at=_UNCHANGED))
    session.commit()
