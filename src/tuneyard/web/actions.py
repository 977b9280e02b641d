"""The dashboard's state-changing requests (POST), each behind the CSRF check.

Sign-in/out, new projects, dataset uploads, jobs (create, pause, resume, cancel), deployments
(create from a checkpoint, cancel, reactivate) and the playground's model calls.
Each is a thin call onto `tuneyard.services` or `tuneyard.api.forward`, the same
code the API's routes call, so the dashboard can do exactly what the API allows.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tuneyard.api.deps import SessionDep, StoreDep, plausible_id
from tuneyard.api.forward import call_model, stream_model
from tuneyard.api.guard import accepts_upload
from tuneyard.errors import Forbidden, InvalidInput, TuneyardError
from tuneyard.schemas import DeploymentCreate, GRPOTrainingJobCreate, TrainingJobCreate
from tuneyard.services import datasets as dataset_service
from tuneyard.services import deployments as deployment_service
from tuneyard.services import jobs as job_service
from tuneyard.services import projects as project_service
from tuneyard.services.keys import hash_key
from tuneyard.serving import openai_format as fmt
from tuneyard.tables import ApiKey
from tuneyard.web import session as cookies
from tuneyard.web.auth import CsrfUser, WebProject, same_origin
from tuneyard.web.common import WebRoute, render
from tuneyard.web.pages import new_job_page, parameter_fields

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _see(url: str, db=None) -> RedirectResponse:
    """303 to `url`, committing first: the browser follows the redirect at once, and
    the request's session would otherwise commit only as the response goes out."""
    if db is not None:
        db.commit()
    return RedirectResponse(url, status_code=303)


# -- sign-in ----------------------------------------------------------------------------

@router.post("/login")
async def login(request: Request, db: SessionDep):
    if not same_origin(request):
        raise Forbidden("cross-site request refused")
    form = await request.form()
    key = str(form.get("api_key") or "").strip()
    target = str(form.get("next") or "/")
    # Only a path of this site: "//host" and "/\\host" would leave it.
    target = target if target.startswith("/") and target[1:2] not in ("/", "\\") else "/"
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key),
                                         ApiKey.revoked_at.is_(None))) if key else None
    if row is None:
        return render(request, "login.html", status_code=401, next=target,
                      error="That API key is not valid here (or has been revoked).")
    settings = request.app.state.settings
    response = _see(target)
    response.set_cookie(
        cookies.COOKIE, cookies.dump(cookies.new_session(row.id),
                                     secret=settings.signing_secret()),
        max_age=cookies.MAX_AGE, httponly=True, samesite="strict", path="/",
        secure=settings.public_url.startswith("https://"),
    )
    return response


@router.post("/logout")
def logout(viewer: CsrfUser):
    response = _see("/login")
    response.delete_cookie(cookies.COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- projects and datasets ----------------------------------------------------------------

@router.post("/projects")
async def create_project(request: Request, viewer: CsrfUser, db: SessionDep):
    name = str((await request.form()).get("name") or "").strip() or None
    project = project_service.create_project(session=db, owner=viewer.user, name=name)
    return _see(f"/projects/{project.id}", db)


@router.post("/projects/{project_id}/datasets")
@accepts_upload  # the request guard counts the body against the upload limit as it streams
async def upload_dataset(request: Request, project: WebProject, viewer: CsrfUser,
                         db: SessionDep, store: StoreDep):
    """The upload (the page's script sends it with a progress bar); JSON either way."""
    settings = request.app.state.settings
    form = await request.form()
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file: choose a file to upload")
        name = str(form.get("name") or "").strip() or None
        dataset = await run_in_threadpool(
            dataset_service.create_dataset, session=db, store=store, project=project,
            user=viewer.user, source=upload.file, filename=upload.filename, name=name,
            max_bytes=settings.max_upload_bytes, tmp_dir=settings.home / "tmp",
        )
    finally:
        await form.close()
    db.commit()
    return JSONResponse({"id": dataset.id,
                         "url": f"/projects/{project.id}/datasets/{dataset.id}"},
                        status_code=201)


@router.post("/projects/{project_id}/delete")
def delete_project(project: WebProject, viewer: CsrfUser, db: SessionDep, store: StoreDep):
    project_service.delete_project(session=db, store=store, project=project)
    return _see("/", db)


@router.post("/projects/{project_id}/datasets/{dataset_id}/delete")
def delete_dataset(dataset_id: str, project: WebProject, viewer: CsrfUser, db: SessionDep,
                   store: StoreDep):
    dataset_service.delete_dataset(session=db, store=store, project=project,
                                   dataset_id=dataset_id)
    return _see(f"/projects/{project.id}", db)


# -- training jobs ----------------------------------------------------------------------

def _parameters(form) -> dict[str, Any]:
    """The form's parameter fields that were filled in, typed as the reference says."""
    out: dict[str, Any] = {}
    for p in parameter_fields():
        raw = form.get(f"p_{p['name']}")
        if p["kind"] == "bool":
            if raw in ("true", "false"):
                out[p["name"]] = raw == "true"
            continue
        if raw is None or not str(raw).strip():
            continue  # blank: the model's template, else the default, applies
        raw = str(raw).strip()
        if p["kind"] == "choice":
            out[p["name"]] = raw
            continue
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(f"parameters: {p['name']} must be a number, got {raw!r}") from None
        if p["kind"] == "int" and math.isfinite(value) and value == int(value):
            value = int(value)
        out[p["name"]] = value
    return out


def _reward(form) -> dict[str, float] | None:
    """GRPO's reward from the form: a weight per test function (`w_<name>`); blank
    weights are left out, so only the functions given a weight reward."""
    weights = {}
    for key, value in form.items():
        if key.startswith("w_") and str(value).strip():
            try:
                weights[key[2:]] = float(value)
            except ValueError:
                raise InvalidInput(f"reward: the weight of {key[2:]!r} must be a number, "
                                   f"got {str(value)[:40]!r}") from None
    return weights or None


@router.post("/projects/{project_id}/jobs")
async def create_job(request: Request, project: WebProject, viewer: CsrfUser, db: SessionDep):
    form = await request.form()
    continued = form.get("source_job")
    try:
        body = TrainingJobCreate(
            base_model=str(continued or form.get("base_model") or ""),
            base_model_option="fine-tuned" if continued else "pre-trained",
            checkpoint=float(form.get("source_checkpoint")) if continued and
            form.get("source_checkpoint") else None,
            train_dataset_id=str(form.get("train_dataset_id") or ""),
            test_dataset_id=str(form.get("test_dataset_id") or "") or None,
            name=str(form.get("name") or "").strip() or None,
            task_type=str(form.get("task_type") or "") or None,
            test_functions=[str(f) for f in form.getlist("test_functions")] or None,
            parameters=_parameters(form) or None,
        )
        technique = str(form.get("technique") or "SFT").upper()
        if technique == "GRPO":
            body = GRPOTrainingJobCreate(**body.model_dump(exclude_none=True),
                                         reward=_reward(form))
            job = job_service.create_grpo_job(session=db, settings=request.app.state.settings,
                                              project=project, user=viewer.user, body=body)
        else:
            job = job_service.create_job(session=db, settings=request.app.state.settings,
                                         project=project, user=viewer.user, body=body,
                                         technique=technique)
    except (TuneyardError, ValueError) as exc:
        db.rollback()
        message = exc.message if isinstance(exc, TuneyardError) else str(exc)
        page = new_job_page(request, project, viewer, db, from_job=None, checkpoint=None,
                            dataset=None)
        context = {k: v for k, v in page.context.items() if k not in ("request", "viewer")}
        return render(request, "job_new.html", status_code=400,
                      **{**context, "error": message, "filled": {
                          **dict(form), "test_functions": form.getlist("test_functions")}})
    return _see(f"/projects/{project.id}/jobs/{job.id}", db)


@router.post("/projects/{project_id}/jobs/{job_id}/cancel")
def cancel_job(job_id: str, project: WebProject, viewer: CsrfUser, db: SessionDep):
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    job_service.cancel_job(session=db, job=job)
    return _see(f"/projects/{project.id}/jobs/{job.id}", db)


@router.post("/projects/{project_id}/jobs/{job_id}/pause")
def pause_job(job_id: str, project: WebProject, viewer: CsrfUser, db: SessionDep):
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    job_service.pause_job(session=db, job=job)  # stops after publishing a checkpoint
    return _see(f"/projects/{project.id}/jobs/{job.id}", db)


@router.post("/projects/{project_id}/jobs/{job_id}/resume")
def resume_job(job_id: str, project: WebProject, viewer: CsrfUser, db: SessionDep):
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    job_service.resume_job(session=db, job=job)  # continues from its latest checkpoint
    return _see(f"/projects/{project.id}/jobs/{job.id}", db)


@router.post("/projects/{project_id}/jobs/{job_id}/delete")
def delete_job(job_id: str, project: WebProject, viewer: CsrfUser, db: SessionDep,
               store: StoreDep):
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    job_service.delete_job(session=db, store=store, job=job)  # a running one is cancelled
    return _see(f"/projects/{project.id}", db)


# -- deployments ------------------------------------------------------------------------

@router.post("/projects/{project_id}/jobs/{job_id}/checkpoints/{number}/deploy")
async def deploy_checkpoint(request: Request, job_id: str, number: int, project: WebProject,
                            viewer: CsrfUser, db: SessionDep):
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    form = await request.form()
    body = DeploymentCreate(training_job_id=job.id, checkpoint=number,
                            name=str(form.get("name") or "").strip() or None,
                            server_type=str(form.get("server_type") or "") or None)
    row = deployment_service.create_deployment(session=db, settings=request.app.state.settings,
                                               project=project, user=viewer.user, body=body)
    # Committed before the redirect; the deployment manager's loop loads Pending ones.
    return _see(f"/projects/{project.id}/deployments/{row.id}", db)


def _deployment(db, project, deployment_id: str):
    plausible_id(deployment_id, "deployment")
    return deployment_service.get_deployment(session=db, project=project,
                                             deployment_id=deployment_id)


@router.post("/projects/{project_id}/deployments/{deployment_id}/{action}")
async def deployment_action(request: Request, deployment_id: str, action: str,
                            project: WebProject, viewer: CsrfUser, db: SessionDep):
    row = _deployment(db, project, deployment_id)
    manager = request.app.state.deployments
    if action == "cancel":
        await deployment_service.cancel_deployment(session=db, manager=manager, deployment=row)
    elif action == "reactivate":
        await deployment_service.reactivate_deployment(session=db, manager=manager,
                                                       deployment=row)
    elif action == "delete":
        await deployment_service.delete_deployment(session=db, manager=manager, deployment=row)
        return _see(f"/projects/{project.id}", db)
    else:
        raise InvalidInput(f"unknown action {action!r}: cancel, reactivate or delete")
    return _see(f"/projects/{project.id}/deployments/{row.id}", db)


# -- the playground ---------------------------------------------------------------------

class Try(BaseModel):
    """One playground request: the fields its task uses, and the sampling controls."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    text: str | None = None
    text2: str | None = None
    temperature: float | None = Field(None, ge=0, le=10)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=100000)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    do_sample: bool | None = None


def _sampling(body: Try) -> dict[str, Any]:
    keys = ("temperature", "top_p", "top_k", "max_new_tokens", "do_sample")
    return {k: getattr(body, k) for k in keys if getattr(body, k) is not None}


def _stream(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/projects/{project_id}/deployments/{deployment_id}/try/{kind}")
async def playground(request: Request, deployment_id: str, kind: str, body: Try,
                     project: WebProject, viewer: CsrfUser, db: SessionDep):
    row = _deployment(db, project, deployment_id)
    db.commit()  # nothing to write; don't hold a transaction open while the model works
    if kind == "chat":
        if not body.messages:
            raise InvalidInput("messages: say something first")
        return _stream(await stream_model(request, row, body.messages, _sampling(body),
                                          fmt.ChatCompletionStream(model=row.name)))
    if kind == "complete":
        if not body.prompt:
            raise InvalidInput("prompt: required")
        return _stream(await stream_model(request, row, body.prompt, _sampling(body),
                                          fmt.TextCompletionStream(model=row.name),
                                          method="stream_complete"))
    if kind == "classify":
        if not body.text:
            raise InvalidInput("text: required")
        answer = await call_model(request, row, "classify", [body.text])
        return {**answer["results"][0], "labels_all": answer.get("labels")}
    if kind == "embed":
        if not body.text or not body.text2:
            raise InvalidInput("text, text2: both texts are required")
        answer = await call_model(request, row, "embed", [body.text, body.text2])
        a, b = answer["embeddings"]
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        return {"cosine": sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0,
                "dimensions": len(a)}
    raise InvalidInput(f"unknown playground kind {kind!r}")
