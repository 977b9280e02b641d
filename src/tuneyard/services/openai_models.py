"""Models of the OpenAI-compatible API: listing them, and serving one by name.

`ensure_serving` makes a model name usable at once with the inference routes:
an `ft:` name (a job's fine_tuned_model or a checkpoint's
fine_tuned_model_checkpoint) or a catalog base model gets a serverless
deployment named exactly that, made on the first request; the deployment
manager loads it on demand and unloads it after its inactive timeout
(services.deployments.DEFAULT_INACTIVE_TIMEOUT). The Emissary inference
code then finds the deployment by that name (services.deployments.find_by_model).
Any other name must be one of the caller's deployments (by name or id).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tuneyard.catalog import load_catalog
from tuneyard.config import Settings
from tuneyard.schemas import DeploymentCreate
from tuneyard.services import deployments as deployment_service
from tuneyard.services.openai_files import OpenAIError, openai_project
from tuneyard.services.openai_ft import checkpoint_for_model, fine_tuned_model_name
from tuneyard.status import DEPLOYMENT_LIVE, JobStatus
from tuneyard.tables import Deployment, OpenAIJob, Project, TrainingJob, User

OWNER = "tuneyard"
MAX_NAME = 200  # a deployment name's column


def _live_deployment(session: Session, user: User, model: str) -> Deployment | None:
    return session.scalars(
        select(Deployment).join(Project, Project.id == Deployment.project_id)
        .where(Project.owner_id == user.id, Deployment.status.in_(DEPLOYMENT_LIVE),
               or_(Deployment.name == model, Deployment.id == model))
        .order_by(Deployment.id.desc())).first()


def ensure_serving(*, session: Session, settings: Settings, user: User, model: str) -> None:
    """Make sure `model` names a live deployment of the caller (see the module)."""
    if len(model) > MAX_NAME:
        raise OpenAIError(f"model: at most {MAX_NAME} characters", param="model",
                          code="model_not_found")
    if _live_deployment(session, user, model) is not None:
        return
    found = checkpoint_for_model(session, user, model)
    if found is not None:
        job, row = found
        project = session.get(Project, job.project_id)
        body = DeploymentCreate(training_job_id=job.id, checkpoint=row.number,
                                server_type="serverless", name=model,
                                description="served on demand for the OpenAI-compatible API")
    else:
        base = load_catalog(settings.home).get(model)
        if base is None or not base.available:
            if session.scalar(select(Deployment.id).join(
                    Project, Project.id == Deployment.project_id).where(
                    Project.owner_id == user.id,
                    or_(Deployment.name == model, Deployment.id == model)).limit(1)):
                return  # a stopped deployment: the inference route says why
            raise OpenAIError(f"The model `{model}` does not exist or you do not have access "
                              "to it.", status=404, param="model", code="model_not_found")
        project = openai_project(session=session, user=user)
        body = DeploymentCreate(training_job_id=model, checkpoint=0, server_type="serverless",
                                name=model, description="base model served on demand for "
                                                        "the OpenAI-compatible API")
    deployment_service.create_deployment(session=session, settings=settings, project=project,
                                         user=user, body=body)
    session.commit()  # the deployment manager and other replicas read it from the DB


def model_object(model_id: str, created: int, owned_by: str = OWNER) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def list_models(*, session: Session, settings: Settings, user: User) -> list[dict]:
    """Available catalog models, then the caller's fine-tuned models (newest first)."""
    models = [model_object(m.name, 0) for m in load_catalog(settings.home).values()
              if m.available]
    project = openai_project(session=session, user=user, create=False)
    if project is not None:
        jobs = session.scalars(select(TrainingJob).where(
            TrainingJob.project_id == project.id, TrainingJob.status == JobStatus.SUCCESS)
            .order_by(TrainingJob.id.desc()))
        for job in jobs:
            name = fine_tuned_model_name(job, session.get(OpenAIJob, job.id))
            models.append(model_object(name, job.finished_at or job.created_at,
                                       owned_by=user.id))
    return models
