"""Per-user and server-wide bounds: queued jobs, live deployments (429 naming the
setting), and model loads on their own bounded threads."""

from __future__ import annotations

import threading
import time

import pytest

from tests.api.test_jobs import jobs_url, upload

pytestmark = pytest.mark.postgres


def deploy(client, project_id, **extra):
    return client.post(f"/v1/projects/{project_id}/deployments",
                       json={"training_job_id": "tuneyard-tiny-lm", "checkpoint": 0,
                             "server_type": "serverless", **extra})


def assert_limited(resp, setting: str) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["status"] == 429 and body["code"] == "limit_reached"
    assert setting in body["error"]


def test_queued_jobs_per_user(client, other_user, project, settings):
    settings.max_queued_jobs_per_user = 2
    ds = upload(client, project["id"])
    job = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": ds}
    first = client.post(jobs_url(project), json=job).json()["id"]
    assert client.post(jobs_url(project), json=job).status_code == 201
    assert_limited(client.post(jobs_url(project), json=job),
                   "TUNEYARD_MAX_QUEUED_JOBS_PER_USER=2")
    assert len(client.get(jobs_url(project)).json()) == 2
    # Another user's queue is their own.
    theirs = other_user.post("/v1/projects", json={}).json()
    their_ds = upload(other_user, theirs["id"])
    assert other_user.post(jobs_url(theirs), json={**job, "train_dataset_id": their_ds}) \
        .status_code == 201
    # A cancelled job leaves the queue.
    assert client.post(f"{jobs_url(project)}/{first}/cancel").status_code == 204
    assert client.post(jobs_url(project), json=job).status_code == 201


def test_live_deployments_per_user_and_overall(client, other_user, project, settings):
    settings.max_deployments_per_user, settings.max_deployments = 2, 3
    first = deploy(client, project["id"]).json()["id"]
    assert deploy(client, project["id"]).status_code == 201
    assert_limited(deploy(client, project["id"]), "TUNEYARD_MAX_DEPLOYMENTS_PER_USER=2")
    theirs = other_user.post("/v1/projects", json={}).json()["id"]
    assert deploy(other_user, theirs).status_code == 201
    assert_limited(deploy(other_user, theirs), "TUNEYARD_MAX_DEPLOYMENTS=3")
    base = f"/v1/projects/{project['id']}/deployments"
    assert client.post(f"{base}/{first}/cancel").status_code == 204
    again = deploy(client, project["id"])  # a cancelled one no longer counts
    assert again.status_code == 201, again.text
    assert_limited(client.post(f"{base}/{first}/reactivate"),
                   "TUNEYARD_MAX_DEPLOYMENTS_PER_USER")
    assert len(client.get(base).json()) == 3


def test_model_loads_run_on_their_own_threads(app, client, project, monkeypatch):
    from tuneyard.deploy.prepare import PrepareError

    manager = app.state.deployments
    seen: list[str] = []

    def prepare_and_start(dp_id):
        seen.append(threading.current_thread().name)
        raise PrepareError("weights unreachable (test)")

    monkeypatch.setattr(manager, "_prepare_and_start", prepare_and_start)
    resp = deploy(client, project["id"], server_type="on-demand")
    assert resp.status_code == 201, resp.text
    url = f"/v1/projects/{project['id']}/deployments/{resp.json()['id']}"
    deadline = time.monotonic() + 20
    while client.get(url).json()["status"] != "Failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    detail = client.get(url).json()
    assert detail["status"] == "Failed" and "weights unreachable" in detail["error"]
    assert seen and all(name.startswith("tuneyard-load") for name in seen)
    assert manager._loader._max_workers == app.state.settings.max_concurrent_loads
