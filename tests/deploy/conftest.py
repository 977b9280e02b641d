"""Deployment fixtures: the worker's app/client/job fixtures, plus helpers."""

from __future__ import annotations

import pytest

from tests.worker.conftest import (  # noqa: F401 - fixtures re-exported for this folder
    create_job,
    dataset_id,
    project,
    settings,
    wait_for,
    worker,
)


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
