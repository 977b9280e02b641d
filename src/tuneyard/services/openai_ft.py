"""The OpenAI-compatible fine-tuning API over tuneyard's training jobs.

A fine-tuning job is a tuneyard text-generation job in the caller's OpenAI
project (services.openai_files), plus an `OpenAIJob` row with what was asked
and what "auto" resolved to. Statuses map to OpenAI's vocabulary
(`OPENAI_STATUS`); events and checkpoints are tuneyard's, in OpenAI's shapes.

Model names. A job's `fine_tuned_model` is `ft:<base model>:<suffix>:<job id>`
(its last checkpoint) and each checkpoint's `fine_tuned_model_checkpoint` is
that name plus `:ckpt-step-<step>`; both can be used at once with
/openai/v1/chat/completions and /openai/v1/completions (see `ensure_serving`).

"auto" hyperparameters (`resolve_hyperparameters`), for N training records:
  - n_epochs: 3, raised to 100 // N (at most 25) when 3 epochs would see fewer
    than 100 examples, lowered to 25000 // N (at least 1) when more than 25000
    (the rule of OpenAI's own data-preparation cookbook);
  - batch_size: the largest power of two <= N / 4 (at least 1), at most the base
    model's `per_device_train_batch_size` in the catalog (else 8);
  - learning_rate_multiplier: 1.0, times the base model's catalog
    `learning_rate` (else 5e-5) gives the learning rate.

Extras beyond OpenAI: `metadata` keys `tuneyard.<parameter>` set any other
tuneyard job parameter (`tuneyard.max_seq_length: "128"`).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.catalog import load_catalog
from tuneyard.config import Settings
from tuneyard.errors import TuneyardError
from tuneyard.schemas import TrainingJobCreate
from tuneyard.services import events as event_service
from tuneyard.services import jobs as job_service
from tuneyard.services.openai_files import SUPERVISED_SHAPES, OpenAIError, openai_project
from tuneyard.status import JobStatus
from tuneyard.tables import Checkpoint, Dataset, JobEvent, OpenAIJob, Project, TrainingJob, User
from tuneyard.training.params import parse_parameters

OPENAI_STATUS = {
    JobStatus.PENDING: "queued", JobStatus.RUNNING: "running", JobStatus.SUCCESS: "succeeded",
    JobStatus.FAILED: "failed", JobStatus.TIMED_OUT: "failed",
    JobStatus.CANCELLED: "cancelled", JobStatus.PAUSED: "paused",
}
TEXT_MODEL_TYPES = ("chat", "completion")
DEFAULT_JOBS_PAGE = 20
MAX_PAGE = 1000
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES, MAX_AUTO_EPOCHS = 3, 100, 25000, 25
DEFAULT_BATCH, DEFAULT_LEARNING_RATE = 8, 5e-5
CHECKPOINT_TAG = ":ckpt-step-"


# -- request bodies (OpenAI's shapes; fields OpenAI clients may send are ignored) --

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] | None = None
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] | None = None
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=100,
                                                            allow_inf_nan=False)] | None = None
    beta: Auto | Annotated[float, Field(gt=0, le=2, allow_inf_nan=False)] | None = None  # dpo


class MethodConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodConfig | None = None
    dpo: MethodConfig | None = None
    reinforcement: dict | None = None


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # integrations, …
    model: str = Field(min_length=1, max_length=300)
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(None, max_length=64)
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    seed: int | None = Field(None, ge=0, lt=2**32)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)


# -- "auto" ------------------------------------------------------------------

DEFAULT_DPO_BETA = 0.1  # TRL's default, and tuneyard's `beta` default


def resolve_hyperparameters(asked: Hyperparameters, *, records: int,
                            template: dict) -> dict[str, Any]:
    """The job's {n_epochs, batch_size, learning_rate_multiplier} with "auto" resolved
    by the rule in the module docstring."""
    records = max(1, records)
    epochs = asked.n_epochs
    if epochs in (None, "auto"):
        epochs = TARGET_EPOCHS
        if records * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
            epochs = min(MAX_AUTO_EPOCHS, max(1, MIN_TARGET_EXAMPLES // records))
        elif records * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
            epochs = max(1, MAX_TARGET_EXAMPLES // records)
    batch = asked.batch_size
    if batch in (None, "auto"):
        cap = int(template.get("per_device_train_batch_size") or DEFAULT_BATCH)
        batch = min(cap, 2 ** int(math.log2(max(1, records // 4))))
    multiplier = asked.learning_rate_multiplier
    if multiplier in (None, "auto"):
        multiplier = 1.0
    return {"n_epochs": int(epochs), "batch_size": int(batch),
            "learning_rate_multiplier": float(multiplier)}


def _tuneyard_parameters(metadata: dict[str, str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, raw in (metadata or {}).items():
        if not key.startswith("tuneyard."):
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        params[key.removeprefix("tuneyard.")] = value if isinstance(
            value, str | int | float | bool) else raw
    return params


# -- model names ----------------------------------------------------------------

def fine_tuned_model_name(job: TrainingJob, oa: OpenAIJob | None) -> str:
    return f"ft:{job.base_model}:{(oa.suffix if oa else None) or ''}:{job.id}"


def checkpoint_model_name(job: TrainingJob, oa: OpenAIJob | None, step: int) -> str:
    return f"{fine_tuned_model_name(job, oa)}{CHECKPOINT_TAG}{step}"


def parse_model_name(model: str) -> tuple[str, int | None] | None:
    """(job id, checkpoint step or None) of an `ft:` name; None for any other name."""
    if not model.startswith("ft:"):
        return None
    parts = model.split(":")
    step = None
    if parts[-1].startswith("ckpt-step-"):
        digits = parts.pop().removeprefix("ckpt-step-")
        if not digits.isdigit() or len(digits) > 9:
            return None
        step = int(digits)
    if len(parts) < 4 or not parts[-1]:
        return None
    return parts[-1], step


def _owned_job(session: Session, user: User, job_id: str) -> TrainingJob | None:
    job = session.get(TrainingJob, job_id) if 0 < len(job_id) <= 64 else None
    if job is None or session.get(Project, job.project_id).owner_id != user.id:
        return None
    return job


def checkpoint_for_model(session: Session, user: User, model: str
                         ) -> tuple[TrainingJob, Checkpoint] | None:
    """The job and checkpoint an `ft:` name names (None: not an ft: name).

    Raises 404 model_not_found when it names nothing usable (yet)."""
    parsed = parse_model_name(model)
    if parsed is None:
        return None
    job_id, step = parsed
    job = _owned_job(session, user, job_id)
    query = select(Checkpoint).where(Checkpoint.job_id == job_id,
                                     Checkpoint.pruned.is_(False))
    if step is not None:
        query = query.where(Checkpoint.step == step)
    elif job is not None and job.status != JobStatus.SUCCESS:
        job = None  # a fine_tuned_model exists once its job succeeded
    row = session.scalars(query.order_by(Checkpoint.number.desc())).first() if job else None
    if row is None:
        raise OpenAIError(f"The model `{model}` does not exist or you do not have access "
                          "to it.", status=404, param="model", code="model_not_found")
    return job, row


# -- jobs -----------------------------------------------------------------------

def _file(session: Session, project: Project, file_id: str | None, field: str) -> Dataset:
    dataset = session.get(Dataset, file_id) if file_id else None
    if dataset is None or dataset.project_id != project.id:
        raise OpenAIError(f"{field}: invalid file id {file_id!r}: no such file (upload it "
                          "with purpose fine-tune first)", param=field,
                          code=f"invalid_{field}")
    return dataset


def create_fine_tuning_job(*, session: Session, settings: Settings, user: User,
                           body: FineTuningJobCreate) -> tuple[TrainingJob, OpenAIJob]:
    project = openai_project(session=session, user=user)
    method = body.method.type if body.method else "supervised"
    if method == "reinforcement":
        raise OpenAIError("method.type: reinforcement fine-tuning is not supported here; "
                          "use supervised", param="method.type", code="unsupported_method")
    asked = body.hyperparameters or Hyperparameters()
    config = getattr(body.method, method, None) if body.method else None
    if config is not None and config.hyperparameters is not None:
        asked = config.hyperparameters  # `method` supersedes the deprecated top level
    if method != "dpo" and asked.beta is not None:
        raise OpenAIError("hyperparameters.beta: only for method.type dpo",
                          param="hyperparameters.beta", code="invalid_hyperparameters")

    source: tuple[TrainingJob, Checkpoint] | None = checkpoint_for_model(session, user,
                                                                         body.model)
    catalog = load_catalog(settings.home)
    if source is None:
        model = catalog.get(body.model)
        if model is None or model.type not in TEXT_MODEL_TYPES or not model.available:
            fits = sorted(m.name for m in catalog.values()
                          if m.type in TEXT_MODEL_TYPES and m.available)
            raise OpenAIError(f"model: {body.model!r} is not available for fine-tuning here "
                              f"(available: {', '.join(fits)})", param="model",
                              code="model_not_available")
        template = model.parameter_template
    else:
        entry = catalog.get(source[0].base_model)
        template = entry.parameter_template if entry else {}

    train = _file(session, project, body.training_file, "training_file")
    valid = (_file(session, project, body.validation_file, "validation_file")
             if body.validation_file else None)
    for field, dataset in (("training_file", train), ("validation_file", valid)):
        if dataset is None:
            continue
        if method == "dpo" and dataset.shape != "preference":
            raise OpenAIError(f"{field}: {dataset.id} holds {dataset.shape} records; DPO needs "
                              "preference records (input, preferred_output, "
                              "non_preferred_output)", param=field, code=f"invalid_{field}")
        if method != "dpo" and dataset.shape not in SUPERVISED_SHAPES:
            raise OpenAIError(f"{field}: {dataset.id} holds {dataset.shape} records; supervised "
                              "fine-tuning needs chat (messages) or prompt/completion records",
                              param=field, code=f"invalid_{field}")

    resolved = resolve_hyperparameters(asked, records=train.num_records, template=template)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    learning_rate = float(template.get("learning_rate") or DEFAULT_LEARNING_RATE)
    params = {**_tuneyard_parameters(body.metadata),
              "num_train_epochs": resolved["n_epochs"],
              "per_device_train_batch_size": resolved["batch_size"],
              "learning_rate": learning_rate * resolved["learning_rate_multiplier"],
              "seed": seed}
    if method == "dpo":  # "auto" is tuneyard's default beta (docs/parameters.md)
        beta = asked.beta if isinstance(asked.beta, int | float) else DEFAULT_DPO_BETA
        resolved["beta"] = params["beta"] = float(beta)
    create = TrainingJobCreate(
        base_model=source[0].id if source else body.model, train_dataset_id=train.id,
        test_dataset_id=valid.id if valid else None, task_type="text-generation",
        name=f"ft-{body.suffix}" if body.suffix else None, parameters=params,
        description="created through the OpenAI-compatible API",
        base_model_option="fine-tuned" if source else None,
        checkpoint=source[1].number if source else None)
    try:
        job = job_service.create_job(session=session, settings=settings, project=project,
                                     user=user, body=create,
                                     technique="DPO" if method == "dpo" else "SFT")
    except TuneyardError as exc:
        param = exc.message.split(":", 1)[0] if ":" in exc.message else None
        param = {"parameters": "hyperparameters", "train_dataset_id": "training_file",
                 "test_dataset_id": "validation_file", "base_model": "model"}.get(param, param)
        raise OpenAIError(exc.message, param=param, code="invalid_request") from None
    oa = OpenAIJob(job_id=job.id, suffix=body.suffix or None, method=method,
                   hyperparameters=resolved, requested=body.model_dump(mode="json"))
    session.add(oa)
    session.flush()
    return job, oa


def _openai_row(session: Session, job: TrainingJob) -> OpenAIJob | None:
    return session.get(OpenAIJob, job.id)


def get_fine_tuning_job(*, session: Session, user: User, job_id: str) -> TrainingJob:
    project = openai_project(session=session, user=user, create=False)
    job = session.get(TrainingJob, job_id) if 0 < len(job_id) <= 64 else None
    if job is None or project is None or job.project_id != project.id:
        raise OpenAIError(f"fine-tuning job {job_id[:64]!r} not found", status=404,
                          param="fine_tuning_job_id", code="fine_tuning_job_not_found")
    return job


def list_fine_tuning_jobs(*, session: Session, user: User, after: str | None,
                          limit: int) -> tuple[list[TrainingJob], bool]:
    """Newest first; `after` is the last job id of the previous page."""
    project = openai_project(session=session, user=user, create=False)
    if project is None:
        return [], False
    query = select(TrainingJob).where(TrainingJob.project_id == project.id)
    if after:
        query = query.where(TrainingJob.id < after)
    rows = list(session.scalars(query.order_by(TrainingJob.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def job_object(session: Session, job: TrainingJob) -> dict[str, Any]:
    oa = _openai_row(session, job)
    params = parse_parameters(job.hyper_parameters)
    hyper = dict(oa.hyperparameters) if oa else {
        "n_epochs": params.num_train_epochs, "batch_size": params.per_device_train_batch_size,
        "learning_rate_multiplier": 1.0}
    method = oa.method if oa else "supervised"
    status = OPENAI_STATUS.get(job.status, "running")
    error = None
    if status == "failed":
        code = "timeout" if job.status == JobStatus.TIMED_OUT else "training_failed"
        error = {"code": code, "message": job.error or "the job failed", "param": None}
    estimated = None
    if status == "running" and job.started_at and 0 < (job.progress or 0) < 100:
        elapsed = time.time() - job.started_at
        estimated = int(job.started_at + elapsed * 100 / job.progress)
    succeeded = job.status == JobStatus.SUCCESS and session.scalar(
        select(Checkpoint.id).where(Checkpoint.job_id == job.id).limit(1)) is not None
    return {
        "id": job.id, "object": "fine_tuning.job", "created_at": job.created_at,
        "model": job.base_model, "fine_tuned_model":
            fine_tuned_model_name(job, oa) if succeeded else None,
        "organization_id": job.created_by, "status": status, "error": error,
        "finished_at": job.finished_at if status in ("succeeded", "failed", "cancelled")
        else None,
        "estimated_finish": estimated, "hyperparameters": hyper,
        "method": {"type": method, method: {"hyperparameters": hyper}},
        "training_file": job.train_dataset_id, "validation_file": job.test_dataset_id,
        "result_files": [], "seed": params.seed,
        "trained_tokens": oa.trained_tokens if oa else None,
        "suffix": oa.suffix if oa else None, "integrations": [], "metadata": None,
        "user_provided_suffix": oa.suffix if oa else None,
    }


def event_object(event: JobEvent) -> dict[str, Any]:
    return {"id": f"ftevent-{event.id}", "object": "fine_tuning.job.event",
            "created_at": event.created_at, "level": event.level, "message": event.message,
            "data": event.data or {}, "type": "metrics" if event.kind == "metrics" else "message"}


def event_cursor(after: str | None) -> int | None:
    if not after:
        return None
    digits = after.removeprefix("ftevent-")
    if not digits.isdigit() or len(digits) > 18:
        raise OpenAIError(f"after: not an event id: {after[:64]!r}", param="after",
                          code="invalid_cursor")
    return int(digits)


def list_job_events(*, session: Session, job: TrainingJob, after: str | None,
                    limit: int) -> tuple[list[JobEvent], bool]:
    rows = event_service.list_events(session=session, job_id=job.id, after=event_cursor(after),
                                     limit=limit + 1, newest_first=True)
    return rows[:limit], len(rows) > limit


def checkpoint_objects(*, session: Session, job: TrainingJob, after: str | None,
                       limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, with each checkpoint's metrics (train loss at its step, valid
    loss on the held-out set, token accuracy once evaluated)."""
    oa = _openai_row(session, job)
    query = select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.pruned.is_(False))
    if after:
        number = after.rsplit("-", 1)[-1]
        if not after.startswith("ftckpt-") or not number.isdigit() or len(number) > 9:
            raise OpenAIError(f"after: not a checkpoint id: {after[:64]!r}", param="after",
                              code="invalid_cursor")
        query = query.where(Checkpoint.number < int(number))
    rows = list(session.scalars(query.order_by(Checkpoint.number.desc()).limit(limit + 1)))
    published = {e.data.get("checkpoint"): e.data for e in session.scalars(
        select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.kind == "checkpoint"))
        if isinstance(e.data, dict)}
    losses = sorted((p.get("step") or 0, p["loss"]) for p in job.training_loss or [])
    objects = []
    for row in rows[:limit]:
        train_loss = (published.get(row.number) or {}).get("train_loss")
        if train_loss is None:
            before = [loss for step, loss in losses if step <= row.step]
            train_loss = before[-1] if before else None
        aggregated = (row.test_results or {}).get("aggregated_test_result") or {}
        accuracy = _number(aggregated.get("token_accuracy"))
        metrics = {"step": float(row.step), "train_loss": train_loss,
                   "valid_loss": row.eval_loss, "full_valid_loss": row.eval_loss,
                   "valid_mean_token_accuracy": accuracy,
                   "full_valid_mean_token_accuracy": accuracy}
        objects.append({
            "id": f"ftckpt-{job.id}-{row.number}", "object": "fine_tuning.job.checkpoint",
            "created_at": row.created_at, "fine_tuning_job_id": job.id,
            "step_number": row.step,
            "fine_tuned_model_checkpoint": checkpoint_model_name(job, oa, row.step),
            "metrics": {k: v for k, v in metrics.items() if v is not None},
        })
    return objects, len(rows) > limit


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
