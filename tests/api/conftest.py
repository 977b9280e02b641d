"""API fixtures: the real app in-process over httpx, on a real database and disk."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def anon(app, client):
    """A client without a key (the app is already started by `client`)."""
    return TestClient(app)


@pytest.fixture
def other_user(client, app):
    """A second user's key and client."""
    from tuneyard.db import session_scope
    from tuneyard.services.keys import create_key

    with session_scope(app.state.engine) as session:
        key, _ = create_key(session=session, name="other")
    return TestClient(app, headers={"X-API-Key": key})


@pytest.fixture
def project(client) -> dict:
    resp = client.post("/v1/projects", json={"name": "p1"})
    assert resp.status_code == 201, resp.text
    return resp.json()
