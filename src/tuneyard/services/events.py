"""Job events: a training job's history, one row per thing that happened.

Written by the API (created, cancel/pause/resume asked), the worker (claimed,
status changes it settles) and the training child (started, step metrics,
checkpoints published, final status, errors), and the evaluation process
(checkpoint evaluated). Read in pages by the Emissary-style route
(`…/training-jobs/{id}/events`, oldest first), by the OpenAI-compatible API
(newest first) and by `tuneyard jobs logs`.

Kinds: created, claimed, started, metrics, checkpoint, evaluated, status, error.
Levels are OpenAI's: info, warn, error. Writers that hold no session use
`emit`, which never raises: losing an event must never fail a job.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.tables import JobEvent

log = logging.getLogger("tuneyard.events")

KINDS = ("created", "claimed", "started", "metrics", "checkpoint", "evaluated", "status",
         "error")
LEVELS = ("info", "warn", "error")
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_MESSAGE = 2000


def add_event(session: Session, job_id: str, kind: str, message: str, *,
              level: str = "info", data: dict | None = None) -> JobEvent:
    """Add an event to `session` (committed with the caller's change)."""
    event = JobEvent(job_id=job_id, kind=kind, message=message[:MAX_MESSAGE], level=level,
                     data=data, created_at=int(time.time()))
    session.add(event)
    return event


def emit(engine, job_id: str, kind: str, message: str, *, level: str = "info",
         data: dict | None = None) -> None:
    """Record one event in its own transaction; log (never raise) on failure."""
    try:
        with Session(engine) as session:
            add_event(session, job_id, kind, message, level=level, data=data)
            session.commit()
    except Exception:  # noqa: BLE001 - an event is never worth failing a job
        log.warning("could not record %s event of job %s", kind, job_id, exc_info=True)


def list_events(*, session: Session, job_id: str, after: int | None = None,
                limit: int = DEFAULT_PAGE, newest_first: bool = False) -> list[JobEvent]:
    """A page of events: after event `after` in the listing's order (oldest or newest first)."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if newest_first:
        if after is not None:
            query = query.where(JobEvent.id < after)
        query = query.order_by(JobEvent.id.desc())
    else:
        if after is not None:
            query = query.where(JobEvent.id > after)
        query = query.order_by(JobEvent.id)
    return list(session.scalars(query.limit(limit)))


STATUS_WORDS = {"Success": "succeeded", "Failed": "failed", "TimedOut": "timed out",
                "Cancelled": "cancelled", "Paused": "paused after publishing a checkpoint",
                "Pending": "queued", "Running": "running"}


def status_message(status: str, error: str | None = None) -> tuple[str, str]:
    """(level, message) of a status-change event: `job succeeded`, `job failed: why`."""
    words = STATUS_WORDS.get(str(status), str(status).lower())
    if error:
        return "error", f"job {words}: {error}"
    return "info", f"job {words}"
