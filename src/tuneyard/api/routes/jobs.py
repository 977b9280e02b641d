"""Training jobs and their checkpoints."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import (
    CurrentUser,
    JobDep,
    ProjectDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    api_key_header,
    bearer,
    current_user,
    plausible_id,
    project_of,
)
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
async def list_checkpoints(
    request: Request, project_id: str, training_job_id: str,
    key: Annotated[str | None, Security(api_key_header)] = None,
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Response:
    """The hot read path (clients poll it while a job trains): the same checks as
    every route (key, project, job in it; the dependencies called directly) and
    the cached listing bytes (services.listing), all in ONE threadpool call rather
    than one per sync dependency, and returned as they are: no response-model
    validation (the model documents the shape)."""

    def answer() -> bytes:
        session = Session(request.app.state.engine, expire_on_commit=False)
        try:
            user = current_user(request=request, session=session, key=key, token=token)
            project = project_of(project_id=project_id, session=session, user=user)
            plausible_id(training_job_id, "training job")
            job = listing.listed_job(session=session, project=project, job_id=training_job_id)
            return listing.checkpoints_json(session=session,
                                            settings=request.app.state.settings, job=job)
        finally:
            session.close()

    return Response(await run_in_threadpool(answer), media_type="application/json")


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
