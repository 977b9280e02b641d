"""Per-user and server-wide bounds on what waits or runs: queued jobs, live deployments.

A bound reached is a 429 saying which one and how to get under it. The counts are
read in the request's transaction, so two requests racing for the last place may
both get it: the bounds keep resource use sane, they are not quotas to the unit.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.config import Settings
from tuneyard.errors import TooManyRequests
from tuneyard.status import DEPLOYMENT_LIVE, JobStatus
from tuneyard.tables import Deployment, TrainingJob, User


def check_job_queue(*, session: Session, settings: Settings, user: User) -> None:
    """Refuse another queued job past `TUNEYARD_MAX_QUEUED_JOBS_PER_USER`."""
    limit = settings.max_queued_jobs_per_user
    queued = session.scalar(select(func.count()).select_from(TrainingJob).where(
        TrainingJob.created_by == user.id, TrainingJob.status == JobStatus.PENDING))
    if queued >= limit:
        raise TooManyRequests(
            f"you have {queued} training jobs waiting to run, the most allowed "
            f"(TUNEYARD_MAX_QUEUED_JOBS_PER_USER={limit}); wait for some to start or cancel some")


def check_deployments(*, session: Session, settings: Settings, user: User,
                      exclude: str | None = None) -> None:
    """Refuse another live deployment past the per-user or the server-wide bound.
    `exclude`: a deployment being brought back, not counted against itself."""
    live = select(func.count()).select_from(Deployment).where(
        Deployment.status.in_(DEPLOYMENT_LIVE))
    if exclude is not None:
        live = live.where(Deployment.id != exclude)
    mine = session.scalar(live.where(Deployment.created_by == user.id))
    if mine >= settings.max_deployments_per_user:
        raise TooManyRequests(
            f"you have {mine} live deployments, the most allowed "
            f"(TUNEYARD_MAX_DEPLOYMENTS_PER_USER={settings.max_deployments_per_user}); "
            "cancel or delete one first")
    everyone = session.scalar(live)
    if everyone >= settings.max_deployments:
        raise TooManyRequests(
            f"this server already runs {everyone} live deployments, its most "
            f"(TUNEYARD_MAX_DEPLOYMENTS={settings.max_deployments}); try again later")
