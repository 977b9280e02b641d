"""Request dependencies: the DB session, the artifact store, the caller, and the
objects a path names (the caller's project, a job or deployment in it).

A path object that is missing, or belongs to another user, is a 404 before the
route runs; routes take `ProjectDep`, `JobDep` or `DeploymentDep` and never
look them up themselves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneyard.config import Settings
from tuneyard.deploy.manager import DeploymentManager
from tuneyard.errors import NotFound, Unauthorized
from tuneyard.services import deployments as deployment_service
from tuneyard.services import jobs as job_service
from tuneyard.services.keys import user_for_key
from tuneyard.services.projects import get_project
from tuneyard.storage import ArtifactStore
from tuneyard.tables import Deployment, Project, TrainingJob, User


def get_session(request: Request) -> Iterator[Session]:
    """The request's session. It commits when the route function returns, before
    the response is sent (`scope="function"` below): a commit that fails is the
    request's error, never a 201 for a write that did not happen."""
    session = Session(request.app.state.engine, expire_on_commit=False)
    request.state.session = session  # for `release_db`, before long waits
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def release_db(request: Request) -> None:
    """Ends the request's transaction, giving its connection back to the pool, before
    the route waits on something slow (a model's answer, a stream): no database
    connection is held across model calls. The session stays usable."""
    session = getattr(request.state, "session", None)
    if session is not None and session.in_transaction():
        await run_in_threadpool(session.commit)  # never a blocking call on the event loop


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_deployment_manager(request: Request) -> DeploymentManager:
    return request.app.state.deployments


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ManagerDep = Annotated[DeploymentManager, Depends(get_deployment_manager)]


# Declared as security schemes so /docs offers an "Authorize" button for both.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
bearer = HTTPBearer(auto_error=False, description="The API key as a Bearer token")


def current_user(
    request: Request,
    session: SessionDep,
    key: Annotated[str | None, Security(api_key_header)] = None,
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> User:
    # The request guard (api/guard.py) has checked the key before the body was read.
    checked = request.scope.get("state", {}).get("user_id")
    if checked is not None and (user := session.get(User, checked)) is not None:
        return user
    key = (key or "").strip() or (token.credentials.strip() if token else "")
    if not key:
        raise Unauthorized("missing API key: send it as X-API-Key or Authorization: Bearer")
    user = user_for_key(session=session, key=key)
    if user is None:
        raise Unauthorized("invalid API key")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


# Ids tuneyard makes are short and printable ASCII: anything else names nothing, and
# is refused before it reaches the database (which may reject a NUL byte outright).
_PLAUSIBLE_ID = re.compile(r"[\x21-\x7e]{1,64}")


def plausible_id(value: str, what: str) -> str:
    """`value`, if it could be one of tuneyard's ids; else a 404 for `what`."""
    if not _PLAUSIBLE_ID.fullmatch(value):
        raise NotFound(f"{what} not found (no such id: {value[:64]!r}"
                       f"{'…' if len(value) > 64 else ''})")
    return value


def project_of(project_id: str, session: SessionDep, user: CurrentUser) -> Project:
    """The `{project_id}` of the path, if the caller owns it (else 404)."""
    plausible_id(project_id, "project")
    return get_project(session=session, owner=user, project_id=project_id)


ProjectDep = Annotated[Project, Depends(project_of)]


def job_of(training_job_id: str, session: SessionDep, project: ProjectDep) -> TrainingJob:
    """The `{training_job_id}` of the path, in the path's project (else 404)."""
    plausible_id(training_job_id, "training job")
    return job_service.get_job(session=session, project=project, job_id=training_job_id)


JobDep = Annotated[TrainingJob, Depends(job_of)]


def deployment_of(deployment_id: str, session: SessionDep, project: ProjectDep) -> Deployment:
    """The `{deployment_id}` of the path, in the path's project (else 404)."""
    plausible_id(deployment_id, "deployment")
    return deployment_service.get_deployment(session=session, project=project,
                                             deployment_id=deployment_id)


DeploymentDep = Annotated[Deployment, Depends(deployment_of)]
