"""Deployments: which checkpoint (or base model) to serve, and their lifecycle state.

Loading and serving happen in model-server processes that the deployment
manager (tuneyard.deploy) starts; this module validates and records, and the
state changes (cancel, reactivate, delete) commit the new state first and then
tell the manager, so that its loop and other API replicas see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.catalog import DEFAULT_TASK, load_catalog
from tuneyard.config import Settings
from tuneyard.errors import InvalidInput, NotFound
from tuneyard.ids import new_id
from tuneyard.schemas import DeploymentCreate
from tuneyard.services.jobs import find_job
from tuneyard.services.limits import check_deployments
from tuneyard.status import DEPLOYMENT_LIVE, DeploymentStatus
from tuneyard.tables import Checkpoint, Deployment, Project, User

if TYPE_CHECKING:
    from tuneyard.deploy.manager import DeploymentManager

SERVER_TYPES = ("serverless", "on-demand")
DEFAULT_INACTIVE_TIMEOUT = 3600  # seconds, as Emissary v2 documents


def create_deployment(*, session: Session, settings: Settings, project: Project, user: User,
                      body: DeploymentCreate) -> Deployment:
    server_type = body.server_type or "on-demand"
    if server_type not in SERVER_TYPES:
        raise InvalidInput(f"server_type: must be one of {', '.join(SERVER_TYPES)}")
    job = find_job(session, project, body.training_job_id)
    if body.checkpoint == 0:
        # v2: checkpoint 0 deploys a base model, named by training_job_id (or the
        # base model of the job it names).
        catalog = load_catalog(settings.home)
        model = catalog.get(job.base_model if job else body.training_job_id)
        if model is None:
            raise InvalidInput(f"training_job_id: with checkpoint 0 it names a base model "
                               f"(GET /v1/models) or a training job; "
                               f"{body.training_job_id!r} is neither")
        if not model.available:
            raise InvalidInput(f"training_job_id: the weights of base model {model.name!r} "
                               "cannot be loaded on this server")
        base_model, task = model.name, (job.task_type if job else DEFAULT_TASK[model.type])
    else:
        if job is None:
            raise InvalidInput(f"training_job_id: training job {body.training_job_id!r} not "
                               "found in this project")
        row = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job.id,
                                                      Checkpoint.number == body.checkpoint))
        if row is None:
            raise InvalidInput(f"checkpoint: training job {job.id} has no checkpoint "
                               f"{body.checkpoint}")
        if row.pruned:
            raise InvalidInput(f"checkpoint: checkpoint {body.checkpoint} of {job.id} was "
                               "pruned by keep_checkpoints; its weights are gone")
        base_model, task = job.base_model, job.task_type
    check_deployments(session=session, settings=settings, user=user)
    deployment = Deployment(
        id=new_id("dp"), project_id=project.id, description=body.description,
        training_job_id=job.id if job else None, checkpoint=body.checkpoint,
        base_model=base_model, task_type=task, server_type=server_type,
        inactive_timeout=(DEFAULT_INACTIVE_TIMEOUT if body.inactive_timeout is None
                          else body.inactive_timeout),
        status=DeploymentStatus.PENDING, created_by=user.id, name="",
    )
    deployment.name = (body.name or "").strip() or f"deployment-{deployment.id[3:11]}"
    session.add(deployment)
    session.flush()
    return deployment


def list_deployments(*, session: Session, project: Project, after: str | None = None,
                     limit: int | None = None) -> list[Deployment]:
    """The project's deployments by id; `after`/`limit` read one page of them."""
    query = select(Deployment).where(Deployment.project_id == project.id)
    if after is not None:
        query = query.where(Deployment.id > after)
    return list(session.scalars(query.order_by(Deployment.id).limit(limit)))


def get_deployment(*, session: Session, project: Project, deployment_id: str) -> Deployment:
    row = session.get(Deployment, deployment_id)
    if row is None or row.project_id != project.id:
        raise NotFound(f"deployment {deployment_id!r} not found in project {project.id!r}")
    return row


async def cancel_deployment(*, session: Session, manager: DeploymentManager,
                            deployment: Deployment) -> None:
    """Stop serving it; it stays listed as Cancelled (reactivate brings it back)."""
    deployment.status = DeploymentStatus.CANCELLED
    session.commit()
    await manager.unload(deployment.id)


async def reactivate_deployment(*, session: Session, manager: DeploymentManager,
                                deployment: Deployment) -> None:
    """Load a cancelled, failed or idle deployment again (Emissary v2)."""
    if manager.serving(deployment.id) or deployment.status in (DeploymentStatus.PENDING,
                                                                   DeploymentStatus.DEPLOYING):
        raise InvalidInput(f"deployment {deployment.id} is already "
                           f"{deployment.status.lower()} and active")
    deployment.status, deployment.error = DeploymentStatus.PENDING, None
    session.commit()
    if deployment.engine_id:
        return  # the engine manager loads it on its engine
    await manager.load(deployment.id)


async def delete_deployment(*, session: Session, manager: DeploymentManager,
                            deployment: Deployment) -> None:
    """Forget it: the row, its model server and its local files."""
    deployment_id = deployment.id
    session.delete(deployment)
    session.commit()
    await manager.forget(deployment_id)


def find_by_model(*, session: Session, user: User, model: str) -> Deployment:
    """OpenAI-style routes name a deployment by id or by name (the user's own)."""
    row = session.get(Deployment, model)
    if row is None:
        row = session.scalars(
            select(Deployment).join(Project, Project.id == Deployment.project_id)
            .where(Deployment.name == model, Project.owner_id == user.id)
            .order_by(Deployment.status.in_(DEPLOYMENT_LIVE).desc(), Deployment.id.desc())
        ).first()
    if row is None or session.get(Project, row.project_id).owner_id != user.id:
        raise NotFound(f"model {model!r}: no deployment with that name or id")
    return row
