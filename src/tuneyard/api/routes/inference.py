"""OpenAI-style inference (Emissary v2): `/v1/completions`, `/v1/chat/completions`,
`/v1/embeddings`, `/v1/classification`. `model` is a deployment's name or id.

The official `openai` package works against these (base_url `…/v1`, the API
key as its api_key, sent as a Bearer token).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tuneyard.api.deps import CurrentUser, SessionDep
from tuneyard.api.forward import call_model, stream_model
from tuneyard.errors import InvalidInput
from tuneyard.schemas import (
    InferenceChatRequest,
    InferenceClassificationRequest,
    InferenceCompletionRequest,
    InferenceEmbeddingRequest,
)
from tuneyard.services.deployments import find_by_model
from tuneyard.serving import openai_format as fmt

router = APIRouter(tags=["Inference"])
SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens",
            "max_new_tokens", "no_repeat_ngram_size", "do_sample", "stop")


def sampling(body: BaseModel) -> dict[str, Any]:
    raw = body.model_dump()
    return {k: raw[k] for k in SAMPLING if raw.get(k) is not None}


def _texts(value: str | list[str]) -> list[str]:
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise InvalidInput("input: must not be empty")
    return texts


@router.post("/v1/chat/completions")
async def chat_completions(body: InferenceChatRequest, request: Request, session: SessionDep,
                           user: CurrentUser):
    row = find_by_model(session=session, user=user, model=body.model)
    messages = [m.model_dump() for m in body.messages]
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        formatter = fmt.ChatCompletionStream(model=body.model, include_usage=include_usage)
        events = await stream_model(request, row, messages, sampling(body), formatter)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    result = await call_model(request, row, "chat", messages, **sampling(body))
    return fmt.chat_completion(result, model=body.model)


@router.post("/v1/completions")
async def completions(body: InferenceCompletionRequest, request: Request, session: SessionDep,
                      user: CurrentUser):
    row = find_by_model(session=session, user=user, model=body.model)
    prompts = _texts(body.prompt)
    if len(prompts) != 1:
        raise InvalidInput("prompt: send one prompt per request")
    if body.stream:
        formatter = fmt.TextCompletionStream(model=body.model)
        events = await stream_model(request, row, prompts[0], sampling(body), formatter,
                                    method="stream_complete")
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    result = await call_model(request, row, "complete", prompts[0], **sampling(body))
    return fmt.text_completion(result, model=body.model)


@router.post("/v1/embeddings")
async def embeddings(body: InferenceEmbeddingRequest, request: Request, session: SessionDep,
                     user: CurrentUser):
    if body.encoding_format not in (None, "float", "base64"):
        raise InvalidInput("encoding_format: must be float or base64")
    row = find_by_model(session=session, user=user, model=body.model)
    answer = await call_model(request, row, "embed", _texts(body.input))
    return fmt.embeddings_response(answer["embeddings"], model=body.model,
                                   prompt_tokens=answer.get("prompt_tokens", 0),
                                   encoding_format=body.encoding_format or "float")


@router.post("/v1/classification")
async def classification(body: InferenceClassificationRequest, request: Request,
                         session: SessionDep, user: CurrentUser):
    if body.data_format not in ("logits", "probs"):
        raise InvalidInput("data_format: must be logits or probs")
    row = find_by_model(session=session, user=user, model=body.model)
    answer = await call_model(request, row, "classify", _texts(body.input))
    return fmt.classification_response(answer["results"], model=body.model,
                                       data_format=body.data_format,
                                       prompt_tokens=answer.get("prompt_tokens", 0))
