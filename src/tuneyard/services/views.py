"""Read-side helpers that shape rows for the wire."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.schemas import TrainingJobSummary
from tuneyard.tables import Project, TrainingJob


def job_summaries(session: Session, project: Project) -> list[TrainingJobSummary]:
    jobs = session.scalars(
        select(TrainingJob).where(TrainingJob.project_id == project.id)
        .order_by(TrainingJob.id)
    )
    return [TrainingJobSummary.model_validate(j) for j in jobs]
