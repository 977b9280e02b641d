"""Training jobs and their checkpoints."""

from fastapi import APIRouter, Response

from tuneyard.api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from tuneyard.schemas import (
    TrainingJobCheckpoint,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobSummary,
)
from tuneyard.services import jobs as job_service
from tuneyard.services.projects import get_project
from tuneyard.services.views import checkpoint_view, job_detail

router = APIRouter(tags=["Training Job"])
BASE = "/v1/projects/{project_id}/training-jobs"


@router.post(BASE, status_code=201, response_model=TrainingJobSummary)
def create_training_job(project_id: str, body: TrainingJobCreate, session: SessionDep,
                        settings: SettingsDep, user: CurrentUser) -> TrainingJobSummary:
    project = get_project(session=session, owner=user, project_id=project_id)
    job = job_service.create_job(session=session, settings=settings, project=project,
                                 user=user, body=body)
    return TrainingJobSummary.model_validate(job)


@router.get(BASE, response_model=list[TrainingJobSummary])
def list_training_jobs(project_id: str, session: SessionDep,
                       user: CurrentUser) -> list[TrainingJobSummary]:
    project = get_project(session=session, owner=user, project_id=project_id)
    return [TrainingJobSummary.model_validate(j)
            for j in job_service.list_jobs(session=session, project=project)]


@router.get(BASE + "/{training_job_id}", response_model=TrainingJobDetail)
def get_training_job(project_id: str, training_job_id: str, session: SessionDep,
                     settings: SettingsDep, user: CurrentUser) -> TrainingJobDetail:
    project = get_project(session=session, owner=user, project_id=project_id)
    job = job_service.get_job(session=session, project=project, job_id=training_job_id)
    return job_detail(session, job, settings)


@router.post(BASE + "/{training_job_id}/cancel", status_code=204, response_class=Response)
def cancel_training_job(project_id: str, training_job_id: str, session: SessionDep,
                        user: CurrentUser) -> Response:
    project = get_project(session=session, owner=user, project_id=project_id)
    job = job_service.get_job(session=session, project=project, job_id=training_job_id)
    job_service.cancel_job(session=session, job=job)
    return Response(status_code=204)


@router.delete(BASE + "/{training_job_id}", status_code=204, response_class=Response)
def delete_training_job(project_id: str, training_job_id: str, session: SessionDep,
                        store: StoreDep, user: CurrentUser) -> Response:
    project = get_project(session=session, owner=user, project_id=project_id)
    job = job_service.get_job(session=session, project=project, job_id=training_job_id)
    job_service.delete_job(session=session, store=store, job=job)
    return Response(status_code=204)


@router.get(BASE + "/{training_job_id}/checkpoints",
            response_model=list[TrainingJobCheckpoint])
def list_checkpoints(project_id: str, training_job_id: str, session: SessionDep,
                     settings: SettingsDep, user: CurrentUser) -> list[TrainingJobCheckpoint]:
    project = get_project(session=session, owner=user, project_id=project_id)
    job = job_service.get_job(session=session, project=project, job_id=training_job_id)
    return [checkpoint_view(settings, job, row)
            for row in job_service.list_checkpoints(session=session, job=job)]
