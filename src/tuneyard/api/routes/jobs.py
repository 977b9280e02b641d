"""Training jobs and their checkpoints."""

from fastapi import APIRouter, Query, Response

from tuneyard.api.deps import CurrentUser, JobDep, ProjectDep, SessionDep, SettingsDep, StoreDep
from tuneyard.api.paging import PageDep
from tuneyard.schemas import (
    GRPOTrainingJobCreate,
    JobEventView,
    TrainingJobCheckpoint,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobSummary,
)
from tuneyard.services import events as event_service
from tuneyard.services import jobs as job_service
from tuneyard.services.views import checkpoint_view, job_detail

router = APIRouter(tags=["Training Job"])
BASE = "/v1/projects/{project_id}/training-jobs"


@router.post(BASE, status_code=201, response_model=TrainingJobSummary)
def create_training_job(body: TrainingJobCreate, project: ProjectDep, session: SessionDep,
                        settings: SettingsDep, user: CurrentUser) -> TrainingJobSummary:
    job = job_service.create_job(session=session, settings=settings, project=project,
                                 user=user, body=body)
    return TrainingJobSummary.model_validate(job)


@router.post(BASE + "/grpo", status_code=201, response_model=TrainingJobSummary)
def create_grpo_training_job(body: GRPOTrainingJobCreate, project: ProjectDep,
                             session: SessionDep, settings: SettingsDep,
                             user: CurrentUser) -> TrainingJobSummary:
    """Emissary v2: a GRPO job rewarded by a weighted map of test functions."""
    job = job_service.create_grpo_job(session=session, settings=settings, project=project,
                                      user=user, body=body)
    return TrainingJobSummary.model_validate(job)


@router.get(BASE, response_model=list[TrainingJobSummary])
def list_training_jobs(project: ProjectDep, session: SessionDep,
                       page: PageDep) -> list[TrainingJobSummary]:
    rows = job_service.list_jobs(session=session, project=project, after=page.after,
                                 limit=page.fetch)
    return [TrainingJobSummary.model_validate(j) for j in page.of(rows)]


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
def list_checkpoints(job: JobDep, session: SessionDep,
                     settings: SettingsDep) -> list[TrainingJobCheckpoint]:
    return [checkpoint_view(settings, job, row)
            for row in job_service.list_checkpoints(session=session, job=job)]


@router.get(BASE + "/{training_job_id}/events", response_model=list[JobEventView])
def list_job_events(job: JobDep, session: SessionDep,
                    limit: int = Query(event_service.DEFAULT_PAGE, ge=1,
                                       le=event_service.MAX_PAGE),
                    after: int | None = Query(None, ge=0, le=2**63 - 1)
                    ) -> list[JobEventView]:
    """extra: the job's events, oldest first; `after` is the last event id already seen."""
    return [JobEventView.model_validate(e) for e in event_service.list_events(
        session=session, job_id=job.id, after=after, limit=limit)]


@router.post(BASE + "/{training_job_id}/pause", status_code=204, response_class=Response)
def pause_training_job(job: JobDep, session: SessionDep) -> Response:
    """extra: stop after publishing a checkpoint; resume continues from it."""
    job_service.pause_job(session=session, job=job)
    return Response(status_code=204)


@router.post(BASE + "/{training_job_id}/resume", status_code=204, response_class=Response)
def resume_training_job(job: JobDep, session: SessionDep) -> Response:
    """extra: continue a paused job from its latest checkpoint."""
    job_service.resume_job(session=session, job=job)
    return Response(status_code=204)
