"""Deployment fixtures: one app, project and worker per module, so a module
trains its checkpoint once and every test deploys it (model servers are what
these tests exercise, not training)."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_database_url, make_settings, serving
from tests.worker.conftest import job_creator, new_project, upload_pattern, wait_for


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    settings = make_settings(folder, fresh_database_url(folder))
    settings.heartbeat_seconds = 1.0
    settings.worker_poll_seconds = 0.2
    return settings


@pytest.fixture(scope="module")
def app_and_client(settings):
    with serving(settings) as both:
        yield both


@pytest.fixture(scope="module")
def app(app_and_client):
    return app_and_client[0]


@pytest.fixture(scope="module")
def client(app_and_client):
    return app_and_client[1]


@pytest.fixture(scope="module")
def project(client):
    return new_project(client, "deploy")


@pytest.fixture(scope="module")
def dataset_id(client, project):
    return upload_pattern(client, project)


@pytest.fixture(scope="module")
def create_job(client, project, dataset_id):
    return job_creator(client, project, dataset_id)


@pytest.fixture(scope="module")
def worker(settings):
    from tuneyard.worker.loop import Worker

    worker = Worker(settings)
    yield worker
    worker.engine.dispose()  # its own pool: no connection left open after the tests


@pytest.fixture
def deploy(client, project):
    """Create a deployment and wait until it is Deployed (or fail with its error)."""
    def create(training_job_id: str, checkpoint: int, **extra):
        url = f"/v1/projects/{project['id']}/deployments"
        resp = client.post(url, json={"training_job_id": training_job_id,
                                      "checkpoint": checkpoint, **extra})
        assert resp.status_code == 201, resp.text
        dep = resp.json()
        if extra.get("server_type") == "serverless":
            return dep
        final = wait_for(lambda: (d := client.get(f"{url}/{dep['id']}").json())["status"]
                         in ("Deployed", "Failed") and d, timeout=180, what="deployed")
        assert final["status"] == "Deployed", final.get("error")
        return final
    return create
