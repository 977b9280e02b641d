"""Deployments (the Emissary contract + v2's reactivate) and their per-deployment
inference routes: completions, chat/completions, classification, embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import (
    CurrentUser,
    DeploymentDep,
    ManagerDep,
    ProjectDep,
    SessionDep,
    SettingsDep,
)
from tuneyard.api.forward import call_model, stream_model, wants_event_stream
from tuneyard.api.paging import PageDep
from tuneyard.deploy.manager import DeploymentManager
from tuneyard.schemas import (
    ChatRequest,
    ClassificationRequest,
    CompletionRequest,
    DeploymentCreate,
    DeploymentDetail,
    DeploymentSummary,
    EmbeddingsRequest,
    Sampling,
)
from tuneyard.services import deployments as service
from tuneyard.services.limits import check_deployments
from tuneyard.serving import openai_format as fmt
from tuneyard.tables import Deployment

router = APIRouter(tags=["Deployment"])
BASE = "/v1/projects/{project_id}/deployments"


def detail(manager: DeploymentManager, row: Deployment) -> DeploymentDetail:
    running = manager.serving(row.id)
    return DeploymentDetail(
        id=row.id, name=row.name, status=row.status, created_at=row.created_at,
        description=row.description, base_model=row.base_model, training_id=row.training_job_id,
        checkpoint=row.checkpoint, updated_at=row.updated_at, task_type=row.task_type,
        server_type=row.server_type, inactive_timeout=row.inactive_timeout,
        active=running is not None or bool(row.engine_id and row.loaded), error=row.error,
        engine_id=row.engine_id,
        labels=running.labels if running else None,
    )


@router.post(BASE, status_code=201, response_model=DeploymentSummary)
def create_deployment(body: DeploymentCreate, project: ProjectDep, session: SessionDep,
                      settings: SettingsDep, user: CurrentUser) -> DeploymentSummary:
    row = service.create_deployment(session=session, settings=settings, project=project,
                                    user=user, body=body)
    return DeploymentSummary.model_validate(row)


@router.get(BASE, response_model=list[DeploymentSummary])
def list_deployments(project: ProjectDep, session: SessionDep,
                     page: PageDep) -> list[DeploymentSummary]:
    rows = service.list_deployments(session=session, project=project, after=page.after,
                                    limit=page.fetch)
    return [DeploymentSummary.model_validate(r) for r in page.of(rows)]


@router.get(BASE + "/{deployment_id}", response_model=DeploymentDetail)
def get_deployment(deployment: DeploymentDep, manager: ManagerDep) -> DeploymentDetail:
    return detail(manager, deployment)


@router.post(BASE + "/{deployment_id}/cancel", status_code=204, response_class=Response)
async def cancel_deployment(deployment: DeploymentDep, session: SessionDep,
                            manager: ManagerDep) -> Response:
    await service.cancel_deployment(session=session, manager=manager, deployment=deployment)
    return Response(status_code=204)


@router.post(BASE + "/{deployment_id}/reactivate", status_code=204, response_class=Response)
async def reactivate_deployment(deployment: DeploymentDep, session: SessionDep,
                                manager: ManagerDep, settings: SettingsDep,
                                user: CurrentUser) -> Response:
    await run_in_threadpool(check_deployments, session=session, settings=settings, user=user,
                            exclude=deployment.id)  # a DB read: off the event loop
    await service.reactivate_deployment(session=session, manager=manager, deployment=deployment)
    return Response(status_code=204)


@router.delete(BASE + "/{deployment_id}", status_code=204, response_class=Response)
async def delete_deployment(deployment: DeploymentDep, session: SessionDep,
                            manager: ManagerDep) -> Response:
    await service.delete_deployment(session=session, manager=manager, deployment=deployment)
    return Response(status_code=204)


# -- per-deployment inference (Emissary) -----------------------------------------

def sampling_of(body: Sampling, *skip: str) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude=set(skip)).items() if v is not None}


@router.post(BASE + "/{deployment_id}/completions")
async def deployment_completions(body: CompletionRequest, row: DeploymentDep,
                                 request: Request) -> dict:
    result = await call_model(request, row, "complete", body.prompt,
                              **sampling_of(body, "prompt"))
    return fmt.emissary_text(result)


@router.post(BASE + "/{deployment_id}/chat/completions")
async def deployment_chat(body: ChatRequest, row: DeploymentDep, request: Request):
    messages = [m.model_dump() for m in body.messages]
    params = sampling_of(body, "messages", "streaming")
    params.pop("stream", None)
    if body.streaming and wants_event_stream(request):
        stream = fmt.EmissaryChatStream()
        return StreamingResponse(await stream_model(request, row, messages, params, stream),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    result = await call_model(request, row, "chat", messages, **params)
    return fmt.emissary_text(result, prefix="chat-completion")


@router.post(BASE + "/{deployment_id}/classification")
async def deployment_classification(body: ClassificationRequest, row: DeploymentDep,
                                    request: Request) -> dict:
    answer = await call_model(request, row, "classify", [body.source_sentence])
    return fmt.emissary_classification({**answer["results"][0], "labels": answer["labels"]}
                                       if "value" not in answer["results"][0]
                                       else answer["results"][0])


@router.post(BASE + "/{deployment_id}/embeddings")
async def deployment_embeddings(body: EmbeddingsRequest, row: DeploymentDep,
                                request: Request) -> dict:
    answer = await call_model(request, row, "embed",
                              [body.source_sentence, body.target_sentence])
    source, target = answer["embeddings"]
    return fmt.emissary_embeddings(source, target, cosine=body.cosine,
                                   manhattan=body.manhattan, euclidean=body.euclidean)
