"""No database connection is held while a request waits on a model: the request's
transaction ends before the model is called."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


class FakeModel:
    """Stands in for a model server's client; records the request's DB state when called."""

    def __init__(self, request_sessions):
        self.sessions = request_sessions
        self.seen: list[bool] = []

    async def complete(self, prompt, **_kwargs):
        self.seen.extend(s.in_transaction() for s in self.sessions)
        return {"text": "ok", "finish_reason": "stop", "prompt_tokens": 1,
                "completion_tokens": 1}


def test_no_transaction_is_open_during_a_model_call(app, client, project, monkeypatch):
    from types import SimpleNamespace

    from tuneyard.api import deps

    sessions = []
    real_session = deps.Session

    def recording_session(*args, **kwargs):
        session = real_session(*args, **kwargs)
        sessions.append(session)
        return session

    monkeypatch.setattr(deps, "Session", recording_session)
    model = FakeModel(sessions)

    async def client_for(_row):
        return SimpleNamespace(client=model)

    monkeypatch.setattr(app.state.deployments, "client_for", client_for)
    resp = client.post(f"/v1/projects/{project['id']}/deployments",
                       json={"training_job_id": "tuneyard-tiny-lm", "checkpoint": 0,
                             "server_type": "serverless"})
    dp = resp.json()["id"]
    sessions.clear()
    resp = client.post(f"/v1/projects/{project['id']}/deployments/{dp}/completions",
                       json={"prompt": "hi"})
    assert resp.status_code == 200, resp.text
    assert sessions and model.seen == [False] * len(sessions)
