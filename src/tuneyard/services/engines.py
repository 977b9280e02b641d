"""Inference engines (Emissary v2): validation, records and schedules.

An engine is one base model served by one model server; LoRA checkpoints are
deployed on it as ordinary deployments that carry its `engine_id`. This module
validates and records; the engine manager (tuneyard.deploy.engines) starts and
stops the servers and loads the adapters, reading what is recorded here.

`resource_management_config` is either
    {management_type: "inactive_timeout", management_config: {inactive_duration: s}}
or a weekly window in an IANA timezone:
    {management_type: "schedule", management_config: {timezone, start_time: "HH:MM",
     end_time: "HH:MM", days: ["monday", ...]}}
A window whose end is not after its start runs past midnight into the next day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.catalog import DEFAULT_TASK, load_catalog
from tuneyard.config import Settings
from tuneyard.errors import InvalidInput, NotFound
from tuneyard.ids import new_id
from tuneyard.schemas import EngineCreate, EngineDeploy
from tuneyard.services.jobs import find_job
from tuneyard.services.projects import get_project
from tuneyard.status import DeploymentStatus
from tuneyard.tables import Checkpoint, Deployment, Engine, User

CREATING, ACTIVE, INACTIVE = "Creating", "Active", "Inactive"
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ENGINE_TASKS = ("text-generation",)  # what the engine model server batches today
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
FIELD = "resource_management_config"


# -- resource management -----------------------------------------------------------

def validate_config(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The config normalised, or InvalidInput naming the bad field."""
    if raw is None:
        return None
    kind = raw.get("management_type")
    config = raw.get("management_config")
    if not isinstance(config, dict):
        raise InvalidInput(f"{FIELD}.management_config: must be an object")
    if kind == "inactive_timeout":
        duration = config.get("inactive_duration")
        if isinstance(duration, bool) or not isinstance(duration, int) or \
                not 60 <= duration <= 30 * 86400:
            raise InvalidInput(f"{FIELD}.management_config.inactive_duration: must be whole "
                               "seconds between 60 and 2592000")
        return {"management_type": kind, "management_config": {"inactive_duration": duration}}
    if kind != "schedule":
        raise InvalidInput(f"{FIELD}.management_type: must be inactive_timeout or schedule")
    zone = config.get("timezone")
    try:
        ZoneInfo(zone) if isinstance(zone, str) and zone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if not zone:
        raise InvalidInput(f"{FIELD}.management_config.timezone: must be an IANA timezone "
                           "such as America/Los_Angeles")
    out: dict[str, Any] = {"timezone": zone}
    for key in ("start_time", "end_time"):
        value = config.get(key)
        if not isinstance(value, str) or not _HHMM.fullmatch(value):
            raise InvalidInput(f"{FIELD}.management_config.{key}: must be HH:MM (24-hour)")
        out[key] = value
    if out["start_time"] == out["end_time"]:
        raise InvalidInput(f"{FIELD}.management_config.end_time: must differ from start_time")
    days = config.get("days", list(DAYS))
    if not isinstance(days, list) or not days or \
            any(not isinstance(d, str) or d.lower() not in DAYS for d in days):
        raise InvalidInput(f"{FIELD}.management_config.days: a non-empty list of "
                           f"{', '.join(DAYS)}")
    out["days"] = [d for d in DAYS if d in {x.lower() for x in days}]
    return {"management_type": kind, "management_config": out}


def inactive_timeout(config: dict[str, Any] | None) -> int | None:
    if config and config.get("management_type") == "inactive_timeout":
        return config["management_config"]["inactive_duration"]
    return None


def _windows(config: dict[str, Any], around: date, zone: ZoneInfo):
    """(start, end) of the windows starting on the days around `around`."""
    start, end = (dtime.fromisoformat(config[k]) for k in ("start_time", "end_time"))
    for offset in range(-1, 8):
        day = around + timedelta(days=offset)
        if DAYS[day.weekday()] not in config["days"]:
            continue
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day + timedelta(days=1 if end <= start else 0), end, zone)
        yield opens, closes


def schedule_state(config: dict[str, Any] | None, at: float) -> tuple[bool, float | None]:
    """(inside the window now, when the next window opens) at unix time `at`.
    No schedule: always inside."""
    if not config or config.get("management_type") != "schedule":
        return True, None
    schedule = config["management_config"]
    zone = ZoneInfo(schedule["timezone"])
    local = datetime.fromtimestamp(at, UTC).astimezone(zone)
    upcoming = []
    for opens, closes in _windows(schedule, local.date(), zone):
        if opens <= local < closes:
            return True, None
        if opens > local:
            upcoming.append(opens)
    return False, min(upcoming).timestamp() if upcoming else None


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- records ---------------------------------------------------------------------------

def get_engine(*, session: Session, user: User, engine_id: str) -> Engine:
    row = session.get(Engine, engine_id)
    if row is None or row.owner_id != user.id:
        raise NotFound(f"engine {engine_id!r} not found")
    return row


def create_engine(*, session: Session, settings: Settings, user: User,
                  body: EngineCreate) -> Engine:
    model = load_catalog(settings.home).get(body.base_model)
    if model is None:
        raise InvalidInput(f"base_model: {body.base_model!r} is not a base model of this "
                           "server (GET /v1/models)")
    if not model.available:
        raise InvalidInput(f"base_model: the weights of {model.name!r} cannot be loaded on "
                           "this server")
    task = body.task_type or DEFAULT_TASK[model.type]
    if task not in ENGINE_TASKS:
        raise InvalidInput(f"task_type: engines serve {', '.join(ENGINE_TASKS)} models; "
                           f"{task!r} engines are not supported")
    row = Engine(id=new_id("engine"), owner_id=user.id, base_model=model.name, task_type=task,
                 resource_management_config=validate_config(body.resource_management_config),
                 status=CREATING, wanted=True, name="")
    row.name = (body.name or "").strip() or f"engine-{row.id[-8:]}"
    session.add(row)
    session.flush()
    return row


def list_engines(*, session: Session, user: User, base_model: str | None = None,
                 task_type: str | None = None) -> list[Engine]:
    query = select(Engine).where(Engine.owner_id == user.id)
    if base_model:
        query = query.where(Engine.base_model == base_model)
    if task_type:
        query = query.where(Engine.task_type == task_type)
    return list(session.scalars(query.order_by(Engine.id)))


def deployments_of(session: Session, engine: Engine) -> list[Deployment]:
    return list(session.scalars(select(Deployment).where(Deployment.engine_id == engine.id)
                                .order_by(Deployment.id)))


def deployment_counts(session: Session, engines: list[Engine]) -> dict[str, int]:
    if not engines:
        return {}
    rows = session.execute(select(Deployment.engine_id, func.count()).where(
        Deployment.engine_id.in_([e.id for e in engines])).group_by(Deployment.engine_id))
    return dict(rows.all())


def deploy_on_engine(*, session: Session, user: User, engine: Engine,
                     body: EngineDeploy) -> Deployment:
    """A deployment of a LoRA checkpoint of the same base, served by `engine`."""
    project = get_project(session=session, owner=user, project_id=body.project_id)
    job = find_job(session, project, body.training_id)
    if job is None:
        raise InvalidInput(f"training_id: training job {body.training_id!r} not found in "
                           f"project {project.id}")
    if job.base_model != engine.base_model:
        raise InvalidInput(f"training_id: job {job.id} was trained from {job.base_model!r}; "
                           f"engine {engine.id} serves {engine.base_model!r}")
    if job.task_type != engine.task_type:
        raise InvalidInput(f"training_id: job {job.id} trains a {job.task_type} model; "
                           f"engine {engine.id} serves {engine.task_type} models")
    if not (job.hyper_parameters or {}).get("use_lora"):
        raise InvalidInput(f"training_id: job {job.id} trained the full model (use_lora is "
                           "off); an engine serves LoRA checkpoints only, deploy it on its "
                           "own instead")
    checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job.id,
                                                         Checkpoint.number == body.checkpoint))
    if checkpoint is None:
        raise InvalidInput(f"checkpoint: training job {job.id} has no checkpoint "
                           f"{body.checkpoint}")
    if checkpoint.pruned:
        raise InvalidInput(f"checkpoint: checkpoint {body.checkpoint} of {job.id} was pruned "
                           "by keep_checkpoints; its weights are gone")
    row = Deployment(
        id=new_id("dp"), project_id=project.id, description=body.description,
        training_job_id=job.id, checkpoint=body.checkpoint, base_model=job.base_model,
        task_type=job.task_type, server_type="on-demand",
        inactive_timeout=inactive_timeout(engine.resource_management_config),
        status=DeploymentStatus.PENDING, created_by=user.id, name="", engine_id=engine.id)
    row.name = (body.name or "").strip() or f"deployment-{row.id[3:11]}"
    session.add(row)
    session.flush()
    return row


def find_on_engine(*, session: Session, engine: Engine, name: str) -> Deployment:
    row = session.scalars(select(Deployment).where(
        Deployment.engine_id == engine.id, (Deployment.name == name) | (Deployment.id == name))
        .order_by(Deployment.id.desc())).first()
    if row is None:
        raise InvalidInput(f"deployment_name: no deployment {name!r} on engine {engine.id}")
    return row
