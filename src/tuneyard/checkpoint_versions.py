"""`TrainingJob.checkpoints_version`: a counter bumped whenever one of the job's
checkpoint rows is inserted, changed or deleted, in the same transaction.

The checkpoint listing is served from cached bytes keyed by it
(services.listing): reading the job, which every request does anyway, says
whether the cached listing is still the truth. Checkpoint rows are written by
several processes (the worker's training and evaluation children, the API), so
the counter lives in the database, and is kept by two session events that
every process gets by importing `tuneyard.tables`:

- `before_flush`: ORM inserts, changes and deletes of `Checkpoint` objects;
- `do_orm_execute`: bulk `update(Checkpoint)` / `delete(Checkpoint)` statements
  through a Session (the jobs they touch are selected with the same WHERE first).

A write that bypasses the ORM Session (raw SQL) would not bump it; tuneyard has none.
"""

from __future__ import annotations

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from tuneyard.tables import Checkpoint, TrainingJob


def bump(session: Session, job_ids) -> None:
    """Add one to the checkpoints_version of `job_ids` (updated_at left alone)."""
    ids = sorted({job_id for job_id in job_ids if job_id is not None})
    if not ids:
        return
    session.execute(
        update(TrainingJob).where(TrainingJob.id.in_(ids))
        .values(checkpoints_version=TrainingJob.checkpoints_version + 1,
                updated_at=TrainingJob.updated_at)
        .execution_options(synchronize_session=False))


@event.listens_for(Session, "before_flush")
def _rows_flushed(session: Session, flush_context, instances) -> None:
    changed = [obj.job_id for obj in session.new if isinstance(obj, Checkpoint)]
    changed += [obj.job_id for obj in session.deleted if isinstance(obj, Checkpoint)]
    changed += [obj.job_id for obj in session.dirty
                if isinstance(obj, Checkpoint) and session.is_modified(obj)]
    bump(session, changed)


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(state) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.class_ is not Checkpoint:
        return
    where = state.statement.whereclause
    query = select(Checkpoint.job_id).distinct()
    if where is not None:
        query = query.where(where)
    bump(state.session, state.session.scalars(query).all())
