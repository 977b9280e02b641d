"""Deployments (the Emissary contract + v2's reactivate) and their per-deployment
inference routes: completions, chat/completions, classification, embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from tuneyard.api.deps import CurrentUser, SessionDep, SettingsDep
from tuneyard.api.forward import call_model, stream_model, wants_event_stream
from tuneyard.errors import InvalidInput
from tuneyard.schemas import DeploymentCreate, DeploymentDetail, DeploymentSummary
from tuneyard.services import deployments as service
from tuneyard.services.projects import get_project
from tuneyard.serving import openai_format as fmt
from tuneyard.tables import Deployment

router = APIRouter(tags=["Deployment"])
BASE = "/v1/projects/{project_id}/deployments"
TEXT_TASKS = ("text-generation",)


def detail(request: Request, row: Deployment) -> DeploymentDetail:
    running = request.app.state.deployments.running.get(row.id)
    return DeploymentDetail(
        id=row.id, name=row.name, status=row.status, created_at=row.created_at,
        description=row.description, base_model=row.base_model, training_id=row.training_job_id,
        checkpoint=row.checkpoint, updated_at=row.updated_at, task_type=row.task_type,
        server_type=row.server_type, inactive_timeout=row.inactive_timeout,
        active=running is not None, error=row.error,
        labels=running.labels if running else None,
    )


def _get(session, user, project_id: str, deployment_id: str) -> Deployment:
    project = get_project(session=session, owner=user, project_id=project_id)
    return service.get_deployment(session=session, project=project, deployment_id=deployment_id)


@router.post(BASE, status_code=201, response_model=DeploymentSummary)
def create_deployment(project_id: str, body: DeploymentCreate, session: SessionDep,
                      settings: SettingsDep, user: CurrentUser) -> DeploymentSummary:
    project = get_project(session=session, owner=user, project_id=project_id)
    row = service.create_deployment(session=session, settings=settings, project=project,
                                    user=user, body=body)
    return DeploymentSummary.model_validate(row)


@router.get(BASE, response_model=list[DeploymentSummary])
def list_deployments(project_id: str, session: SessionDep,
                     user: CurrentUser) -> list[DeploymentSummary]:
    project = get_project(session=session, owner=user, project_id=project_id)
    return [DeploymentSummary.model_validate(r)
            for r in service.list_deployments(session=session, project=project)]


@router.get(BASE + "/{deployment_id}", response_model=DeploymentDetail)
def get_deployment(project_id: str, deployment_id: str, request: Request, session: SessionDep,
                   user: CurrentUser) -> DeploymentDetail:
    return detail(request, _get(session, user, project_id, deployment_id))


@router.post(BASE + "/{deployment_id}/cancel", status_code=204, response_class=Response)
async def cancel_deployment(project_id: str, deployment_id: str, request: Request,
                            session: SessionDep, user: CurrentUser) -> Response:
    row = _get(session, user, project_id, deployment_id)
    row.status = "Cancelled"
    session.commit()
    await request.app.state.deployments.unload(row.id)
    return Response(status_code=204)


@router.post(BASE + "/{deployment_id}/reactivate", status_code=204, response_class=Response)
async def reactivate_deployment(project_id: str, deployment_id: str, request: Request,
                                session: SessionDep, user: CurrentUser) -> Response:
    row = _get(session, user, project_id, deployment_id)
    manager = request.app.state.deployments
    if row.id in manager.running or row.status in ("Pending", "Deploying"):
        raise InvalidInput(f"deployment {row.id} is already {row.status.lower()} and active")
    row.status, row.error = "Pending", None
    session.commit()
    await manager.load(row.id)
    return Response(status_code=204)


@router.delete(BASE + "/{deployment_id}", status_code=204, response_class=Response)
async def delete_deployment(project_id: str, deployment_id: str, request: Request,
                            session: SessionDep, user: CurrentUser) -> Response:
    row = _get(session, user, project_id, deployment_id)
    session.delete(row)
    session.commit()
    await request.app.state.deployments.forget(deployment_id)
    return Response(status_code=204)


# -- per-deployment inference (Emissary) -----------------------------------------

class Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")  # v2 names (max_tokens, …) pass through
    temperature: float | None = None
    max_new_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    no_repeat_ngram_size: int | None = None
    do_sample: bool | None = None


class CompletionRequest(Sampling):
    prompt: str


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(Sampling):
    messages: list[ChatMessage]
    streaming: bool = False


class ClassificationRequest(BaseModel):
    source_sentence: str


class EmbeddingsRequest(BaseModel):
    source_sentence: str
    target_sentence: str
    cosine: bool = False
    manhattan: bool = False
    euclidean: bool = False


def sampling_of(body: Sampling, *skip: str) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude=set(skip)).items() if v is not None}


@router.post(BASE + "/{deployment_id}/completions")
async def deployment_completions(project_id: str, deployment_id: str, body: CompletionRequest,
                                 request: Request, session: SessionDep,
                                 user: CurrentUser) -> dict:
    row = _get(session, user, project_id, deployment_id)
    result = await call_model(request, row, "complete", body.prompt,
                              **sampling_of(body, "prompt"))
    return fmt.emissary_text(result)


@router.post(BASE + "/{deployment_id}/chat/completions")
async def deployment_chat(project_id: str, deployment_id: str, body: ChatRequest,
                          request: Request, session: SessionDep, user: CurrentUser):
    row = _get(session, user, project_id, deployment_id)
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
async def deployment_classification(project_id: str, deployment_id: str,
                                    body: ClassificationRequest, request: Request,
                                    session: SessionDep, user: CurrentUser) -> dict:
    row = _get(session, user, project_id, deployment_id)
    answer = await call_model(request, row, "classify", [body.source_sentence])
    return fmt.emissary_classification({**answer["results"][0], "labels": answer["labels"]}
                                       if "value" not in answer["results"][0]
                                       else answer["results"][0])


@router.post(BASE + "/{deployment_id}/embeddings")
async def deployment_embeddings(project_id: str, deployment_id: str, body: EmbeddingsRequest,
                                request: Request, session: SessionDep,
                                user: CurrentUser) -> dict:
    row = _get(session, user, project_id, deployment_id)
    answer = await call_model(request, row, "embed",
                              [body.source_sentence, body.target_sentence])
    source, target = answer["embeddings"]
    return fmt.emissary_embeddings(source, target, cosine=body.cosine,
                                   manhattan=body.manhattan, euclidean=body.euclidean)
