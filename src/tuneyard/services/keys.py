"""Users and API keys: keys are stored as sha256 hashes, each belongs to a user."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.ids import new_id
from tuneyard.tables import ApiKey, User, now

KEY_PREFIX = "ty_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_user(*, session: Session, name: str, is_admin: bool = False) -> User:
    user = User(id=new_id("user"), name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def register_key(*, session: Session, user: User, name: str, key: str) -> ApiKey:
    """Store `key` (hashed) for `user`; registering the same key again is a no-op."""
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if existing is not None:
        return existing
    row = ApiKey(id=new_id("key"), user_id=user.id, name=name, key_hash=hash_key(key),
                 prefix=key[:8])
    session.add(row)
    session.flush()
    return row


def create_key(*, session: Session, name: str, user_id: str | None = None,
               is_admin: bool = False) -> tuple[str, ApiKey]:
    """A new random key, for an existing user or a new one named like the key."""
    user = session.get(User, user_id) if user_id else None
    if user_id and user is None:
        raise LookupError(f"no user {user_id!r}")
    if user is None:
        user = create_user(session=session, name=name, is_admin=is_admin)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, register_key(session=session, user=user, name=name, key=key)


def user_for_key(*, session: Session, key: str) -> User | None:
    row = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    return row.user if row else None


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(*, session: Session, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise LookupError(f"no key {key_id!r}")
    row.revoked_at = now()
    return row


def bootstrap_keys(*, session: Session, home: Path, bootstrap_key: str | None) -> str | None:
    """Make sure someone can log in. Returns a newly created admin key, if any.

    `TUNEYARD_BOOTSTRAP_API_KEY` is registered as an admin key; with no keys at
    all, a random admin key is created and written to `<home>/admin.key` (0600).
    """
    if bootstrap_key:
        existing = session.scalar(
            select(ApiKey).where(ApiKey.key_hash == hash_key(bootstrap_key))
        )
        if existing is None:
            user = create_user(session=session, name="admin", is_admin=True)
            register_key(session=session, user=user, name="bootstrap", key=bootstrap_key)
        return None
    if session.scalar(select(ApiKey.id).limit(1)) is not None:
        return None
    key, _ = create_key(session=session, name="admin", is_admin=True)
    path = home / "admin.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
