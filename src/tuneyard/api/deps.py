"""Request dependencies: the DB session, the artifact store, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
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


def api_key_from(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def current_user(request: Request, session: SessionDep) -> User:
    key = api_key_from(request)
    if not key:
        raise Unauthorized("missing API key: send it as X-API-Key or Authorization: Bearer")
    user = user_for_key(session=session, key=key)
    if user is None:
        raise Unauthorized("invalid API key")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
