"""Training jobs and their checkpoints."""

from fastapi import APIRouter, Response

from tuneyard.api.deps import CurrentUser, JobDep, ProjectDep, SessionDep, SettingsDep, StoreDep
from tuneyard.schemas import (
    TrainingJobCheckpoint,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobSummary,
)
from tuneyard.services import jobs as job_service
from tuneyard.services import listing
from tuneyard.services.views import job_detail

router = APIRouter(tags=["Training Job"])
BASE = "/v1/projects/{project_id}/training-jobs"


@router.post(BASE, status_code=201, response_model=TrainingJobSummary)
def create_training_job(body: TrainingJobCreate, project: ProjectDep, session: SessionDep,
                        settings: SettingsDep, user: CurrentUser) -> TrainingJobSummary:
    job = job_service.create_job(session=session, settings=settings, project=project,
                                 user=user, body=body)
    return TrainingJobSummary.model_validate(job)


@router.get(BASE, response_model=list[TrainingJobSummary])
def list_training_jobs(project: ProjectDep, session: SessionDep) -> list[TrainingJobSummary]:
    return [TrainingJobSummary.model_validate(j)
            for j in job_service.list_jobs(session=session, project=project)]


@router.get(BASE + "/{training_job_id}", response_model=TrainingJobDetail)
def get_training_job(job: JobDep, session: SessionDep,
                     settings: SettingsDep) -> TrainingJobDetail:
    return job_detail(session, job, settings)


@router.post(BASE + "/{training_job_id}/cancel", status_code=204, response_class=Response)
def cancel_training_job(job: JobDep, session: SessionDep) -> Response:
    job_service.cancel_job(session=session, job=job)
    return Response(status_code=204)


@router.delete(BASE + "/{training_job_id}", status_code=204, response_class=Response)
def delete_training_job(job: JobDep, session: SessionDep, store: StoreDep) -> Response:
    job_service.delete_job(session=session, store=store, job=job)
    return Response(status_code=204)


@router.get(BASE + "/{training_job_id}/checkpoints",
            response_model=list[TrainingJobCheckpoint])
def list_checkpoints(job: JobDep, session: SessionDep, settings: SettingsDep) -> Response:
    # Cached serialized bytes (services.listing), returned as they are: no
    # response-model validation on this hot read path (the model documents it).
    return Response(listing.checkpoints_json(session=session, settings=settings, job=job),
                    media_type="application/json")
