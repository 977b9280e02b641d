"""Client fixtures: one real `tuneyard serve` for the package, and helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.server import LiveServer
from tuneyard.client import TuneyardAPIError, TuneyardClient

ROWS = [{"prompt": f"{i % 10} plus one is", "completion": f" {(i + 1) % 10}"}
        for i in range(16)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def server(live_server):
    return live_server


@pytest.fixture
def api(server: LiveServer):
    with TuneyardClient(server.url, server.key, timeout=30) as client:
        yield client


@pytest.fixture
def project(api: TuneyardClient):
    project = api.projects.create("client-tests")
    yield project
    try:
        api.projects.delete(project.id)
    except TuneyardAPIError:
        pass  # the test deleted it


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "plus-one.jsonl", ROWS)


def require_route(call):
    """Run `call()`; skip the test if the server does not have that route yet."""
    try:
        return call()
    except TuneyardAPIError as exc:
        if exc.status == 404 and exc.message == "Not Found":  # the framework's, not ours
            pytest.skip("the server has no such route yet")
        raise
