"""Inference engines (Emissary v2 "Inference Engines"): many LoRA checkpoints of
one base model served by one model server. An engine belongs to its creator
(another user's is a 404); a deployment on it is an ordinary deployment of its
project everywhere else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import CurrentUser, SessionDep, SettingsDep
from tuneyard.deploy.prepare import remove_local
from tuneyard.errors import InvalidInput
from tuneyard.schemas import (
    DeploymentSummary,
    EngineCreate,
    EngineDeploy,
    EngineDetail,
    EngineSummary,
    EngineUndeploy,
)
from tuneyard.services import engines as service
from tuneyard.services.engines import ACTIVE, CREATING, INACTIVE, schedule_state
from tuneyard.status import DeploymentStatus
from tuneyard.tables import Engine

router = APIRouter(tags=["Inference Engines"])
BASE = "/v1/engines"


def engine_dep(engine_id: str, session: SessionDep, user: CurrentUser) -> Engine:
    return service.get_engine(session=session, user=user, engine_id=engine_id)


EngineDep = Annotated[Engine, Depends(engine_dep)]


def summary(row: Engine, count: int) -> EngineSummary:
    return EngineSummary(id=row.id, name=row.name, status=row.status, base_model=row.base_model,
                         task_type=row.task_type, deployment_counts=count,
                         created_at=row.created_at)


@router.post(BASE, status_code=201, response_model=EngineSummary)
def create_engine(body: EngineCreate, session: SessionDep, settings: SettingsDep,
                  user: CurrentUser) -> EngineSummary:
    row = service.create_engine(session=session, settings=settings, user=user, body=body)
    return summary(row, 0)


@router.get(BASE, response_model=list[EngineSummary])
def list_engines(session: SessionDep, user: CurrentUser, base_model: str | None = None,
                 task_type: str | None = None) -> list[EngineSummary]:
    rows = service.list_engines(session=session, user=user, base_model=base_model,
                                task_type=task_type)
    counts = service.deployment_counts(session, rows)
    return [summary(r, counts.get(r.id, 0)) for r in rows]


@router.get(BASE + "/{engine_id}", response_model=EngineDetail)
def get_engine(engine: EngineDep, session: SessionDep, request: Request) -> EngineDetail:
    deployments = service.deployments_of(session, engine)
    _, next_open = schedule_state(engine.resource_management_config,
                                  request.app.state.engines.clock())
    return EngineDetail(
        **summary(engine, len(deployments)).model_dump(),
        deployments=[DeploymentSummary.model_validate(d) for d in deployments],
        last_access_timestamp=int(engine.last_request_at) if engine.last_request_at else None,
        resource_management_config=engine.resource_management_config, error=engine.error,
        next_active_at=int(next_open) if next_open else None)


@router.delete(BASE + "/{engine_id}", status_code=204, response_class=Response)
async def delete_engine(engine: EngineDep, session: SessionDep, request: Request) -> Response:
    engine_id = engine.id
    gone = [row.id for row in service.deployments_of(session, engine)]
    for row in service.deployments_of(session, engine):
        session.delete(row)
    session.delete(engine)
    session.commit()
    await request.app.state.engines.shut(engine_id, status=None)
    for dp_id in gone:  # their downloaded checkpoints
        await run_in_threadpool(remove_local, request.app.state.settings, dp_id)
    return Response(status_code=204)


@router.post(BASE + "/{engine_id}/deploy", status_code=201, response_model=DeploymentSummary)
def deploy(engine: EngineDep, body: EngineDeploy, session: SessionDep,
           user: CurrentUser) -> DeploymentSummary:
    row = service.deploy_on_engine(session=session, user=user, engine=engine, body=body)
    return DeploymentSummary.model_validate(row)


@router.post(BASE + "/{engine_id}/undeploy", status_code=204, response_class=Response)
async def undeploy(engine: EngineDep, body: EngineUndeploy, session: SessionDep,
                   request: Request) -> Response:
    """Take the deployment off the engine: its adapter is unloaded at once, the
    other deployments keep answering; it stays listed as Cancelled."""
    row = service.find_on_engine(session=session, engine=engine, name=body.deployment_name)
    row.status, row.loaded = DeploymentStatus.CANCELLED, False
    session.commit()
    await request.app.state.engines.detach(engine.id, row.id)
    return Response(status_code=204)


@router.post(BASE + "/{engine_id}/reactivate", status_code=204, response_class=Response)
async def reactivate(engine: EngineDep, session: SessionDep, request: Request) -> Response:
    if engine.wanted and engine.status in (ACTIVE, CREATING):
        raise InvalidInput(f"engine {engine.id} is already {engine.status.lower()}")
    engine.wanted, engine.error, engine.status = True, None, CREATING
    session.commit()
    reason = request.app.state.engines.availability(engine)
    if reason:  # outside its schedule: it starts when the window opens
        engine.status = INACTIVE
        session.commit()
    return Response(status_code=204)


@router.post(BASE + "/{engine_id}/deactivate", status_code=204, response_class=Response)
async def deactivate(engine: EngineDep, session: SessionDep, request: Request) -> Response:
    if not engine.wanted or engine.status == INACTIVE:
        raise InvalidInput(f"engine {engine.id} is not active")
    engine.wanted = False
    session.commit()
    await request.app.state.engines.shut(engine.id)
    return Response(status_code=204)
