"""The OpenAI-compatible API under /openai/v1: files, fine-tuning jobs, models and
inference, for the official `openai` package (`base_url=".../openai/v1"`, the
tuneyard API key as `api_key`). Errors here have OpenAI's body
(api.openai_errors); the Emissary routes under /v1 are untouched.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tuneyard.api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from tuneyard.api.guard import accepts_upload
from tuneyard.api.routes import inference
from tuneyard.schemas import (
    InferenceChatRequest,
    InferenceCompletionRequest,
    InferenceEmbeddingRequest,
)
from tuneyard.services import jobs as job_service
from tuneyard.services import openai_files as files
from tuneyard.services import openai_ft as ft
from tuneyard.services import openai_models as models
from tuneyard.services.openai_files import OpenAIError
from tuneyard.storage import ObjectNotFound
from tuneyard.storage.http import file_response

router = APIRouter(prefix="/openai/v1", tags=["OpenAI-compatible"])
Limit = Query(ft.DEFAULT_JOBS_PAGE, ge=1, le=ft.MAX_PAGE)
After = Query(None, max_length=100)


def page(data: list, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


# -- files ----------------------------------------------------------------------

@router.post("/files")
@accepts_upload  # the request guard counts the body against the upload limit as it streams
async def create_file(request: Request, session: SessionDep, store: StoreDep,
                      settings: SettingsDep, user: CurrentUser) -> dict:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise OpenAIError("body must be multipart/form-data with 'file' and 'purpose' fields",
                          param="file")
    form = await request.form()
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise OpenAIError("file: required (the multipart field 'file')", param="file")
        purpose = form.get("purpose")
        dataset = await run_in_threadpool(
            files.upload_file, session=session, store=store, user=user, source=upload.file,
            filename=upload.filename, purpose=purpose if isinstance(purpose, str) else None,
            max_bytes=settings.max_upload_bytes, tmp_dir=settings.home / "tmp")
    finally:
        await form.close()
    return files.file_object(dataset)


@router.get("/files")
def list_files(session: SessionDep, user: CurrentUser, after: str | None = After,
               limit: int = Query(files.DEFAULT_FILES_PAGE, ge=1, le=files.MAX_FILES_PAGE),
               order: Literal["asc", "desc"] = "desc", purpose: str | None = None) -> dict:
    if purpose not in (None, *files.PURPOSES):
        return page([], False)
    rows, more = files.list_files(session=session, user=user, after=after, limit=limit,
                                  order=order)
    return page([files.file_object(d) for d in rows], more)


@router.get("/files/{file_id}")
def retrieve_file(file_id: str, session: SessionDep, user: CurrentUser) -> dict:
    return files.file_object(files.get_file(session=session, user=user, file_id=file_id))


@router.get("/files/{file_id}/content")
def file_content(file_id: str, request: Request, session: SessionDep, store: StoreDep,
                 user: CurrentUser):
    dataset = files.get_file(session=session, user=user, file_id=file_id)
    try:
        return file_response(store, key=dataset.storage_key,
                             range_header=request.headers.get("range"),
                             filename=dataset.filename, sha256=dataset.sha256)
    except ObjectNotFound:
        raise OpenAIError(f"the content of {file_id} is gone", status=404,
                          code="file_not_found") from None


@router.delete("/files/{file_id}")
def delete_file(file_id: str, session: SessionDep, store: StoreDep, user: CurrentUser) -> dict:
    return files.delete_file(session=session, store=store, user=user, file_id=file_id)


# -- fine-tuning jobs ------------------------------------------------------------------

@router.post("/fine_tuning/jobs")
def create_job(body: ft.FineTuningJobCreate, session: SessionDep, settings: SettingsDep,
               user: CurrentUser) -> dict:
    job, _ = ft.create_fine_tuning_job(session=session, settings=settings, user=user,
                                       body=body)
    return ft.job_object(session, job)


@router.get("/fine_tuning/jobs")
def list_jobs(session: SessionDep, user: CurrentUser, after: str | None = After,
              limit: int = Limit) -> dict:
    rows, more = ft.list_fine_tuning_jobs(session=session, user=user, after=after, limit=limit)
    return page([ft.job_object(session, j) for j in rows], more)


@router.get("/fine_tuning/jobs/{job_id}")
def retrieve_job(job_id: str, session: SessionDep, user: CurrentUser) -> dict:
    return ft.job_object(session, ft.get_fine_tuning_job(session=session, user=user,
                                                         job_id=job_id))


def _change(session, user, job_id: str, change) -> dict:
    job = ft.get_fine_tuning_job(session=session, user=user, job_id=job_id)
    change(session=session, job=job)
    return ft.job_object(session, job)


@router.post("/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(job_id: str, session: SessionDep, user: CurrentUser) -> dict:
    return _change(session, user, job_id, job_service.cancel_job)


@router.post("/fine_tuning/jobs/{job_id}/pause")
def pause_job(job_id: str, session: SessionDep, user: CurrentUser) -> dict:
    return _change(session, user, job_id, job_service.pause_job)


@router.post("/fine_tuning/jobs/{job_id}/resume")
def resume_job(job_id: str, session: SessionDep, user: CurrentUser) -> dict:
    return _change(session, user, job_id, job_service.resume_job)


@router.get("/fine_tuning/jobs/{job_id}/events")
def list_events(job_id: str, session: SessionDep, user: CurrentUser, after: str | None = After,
                limit: int = Limit) -> dict:
    job = ft.get_fine_tuning_job(session=session, user=user, job_id=job_id)
    rows, more = ft.list_job_events(session=session, job=job, after=after, limit=limit)
    return page([ft.event_object(e) for e in rows], more)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(job_id: str, session: SessionDep, user: CurrentUser,
                     after: str | None = After, limit: int = Query(10, ge=1, le=ft.MAX_PAGE)
                     ) -> dict:
    job = ft.get_fine_tuning_job(session=session, user=user, job_id=job_id)
    rows, more = ft.checkpoint_objects(session=session, job=job, after=after, limit=limit)
    return page(rows, more)


# -- models and inference ------------------------------------------------------------

@router.get("/models")
def list_models(session: SessionDep, settings: SettingsDep, user: CurrentUser) -> dict:
    return {"object": "list",
            "data": models.list_models(session=session, settings=settings, user=user)}


@router.get("/models/{model}")
def retrieve_model(model: str, session: SessionDep, settings: SettingsDep,
                   user: CurrentUser) -> dict:
    for entry in models.list_models(session=session, settings=settings, user=user):
        if entry["id"] == model:
            return entry
    found = ft.checkpoint_for_model(session, user, model)  # 404 unless a checkpoint's name
    if found is None:
        raise OpenAIError(f"The model `{model}` does not exist or you do not have access "
                          "to it.", status=404, param="model", code="model_not_found")
    return models.model_object(model, found[1].created_at, owned_by=user.id)


@router.post("/chat/completions")
async def chat_completions(body: InferenceChatRequest, request: Request, session: SessionDep,
                           settings: SettingsDep, user: CurrentUser):
    models.ensure_serving(session=session, settings=settings, user=user, model=body.model)
    return await inference.chat_completions(body, request, session, user)


@router.post("/completions")
async def completions(body: InferenceCompletionRequest, request: Request, session: SessionDep,
                      settings: SettingsDep, user: CurrentUser):
    models.ensure_serving(session=session, settings=settings, user=user, model=body.model)
    return await inference.completions(body, request, session, user)


@router.post("/embeddings")
async def embeddings(body: InferenceEmbeddingRequest, request: Request, session: SessionDep,
                     settings: SettingsDep, user: CurrentUser):
    models.ensure_serving(session=session, settings=settings, user=user, model=body.model)
    return await inference.embeddings(body, request, session, user)
