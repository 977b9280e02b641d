"""Request dependencies: the DB session, the artifact store, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tuneyard.config import Settings
from tuneyard.errors import Unauthorized
from tuneyard.services.keys import user_for_key
from tuneyard.storage import ArtifactStore
from tuneyard.tables import User


def get_session(request: Request) -> Iterator[Session]:
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


# Declared as security schemes so /docs offers an "Authorize" button for both.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
bearer = HTTPBearer(auto_error=False, description="The API key as a Bearer token")


def current_user(
    session: SessionDep,
    key: Annotated[str | None, Security(api_key_header)] = None,
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> User:
    key = (key or "").strip() or (token.credentials.strip() if token else "")
    if not key:
        raise Unauthorized("missing API key: send it as X-API-Key or Authorization: Bearer")
    user = user_for_key(session=session, key=key)
    if user is None:
        raise Unauthorized("invalid API key")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
