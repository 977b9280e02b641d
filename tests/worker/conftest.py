"""Worker fixtures: the real app (for requests), a real worker, real training."""

from __future__ import annotations

import json
import threading
import time

import pytest

# A pattern the tiny LM learns quickly: the completion repeats a letter.
PATTERN = "".join(
    json.dumps({"prompt": f"say {c}:", "completion": f" {c}{c}{c}"}) + "\n"
    for c in "abcdefghijklmnopqrstuvwxyz"
).encode()


@pytest.fixture
def settings(settings):
    settings.heartbeat_seconds = 1.0
    settings.worker_poll_seconds = 0.2
    return settings


def new_project(client, name: str = "w") -> dict:
    return client.post("/v1/projects", json={"name": name}).json()


def upload_pattern(client, project) -> str:
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": ("pattern.jsonl", PATTERN)}, data={"name": "pattern"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def job_creator(client, project, dataset_id):
    """`create(**overrides)`: a text-generation job on the tiny LM, quick to train."""
    def create(**overrides):
        params = {"num_train_epochs": 3, "per_device_train_batch_size": 8,
                  "learning_rate": 0.003, "logging_steps": 1, "max_seq_length": 64,
                  **overrides.pop("parameters", {})}
        body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset_id,
                "train_test_split_ratio": 0.2, "parameters": params, **overrides}
        resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()
    return create


@pytest.fixture
def project(client):
    return new_project(client)


@pytest.fixture
def dataset_id(client, project):
    return upload_pattern(client, project)


@pytest.fixture
def create_job(client, project, dataset_id):
    return job_creator(client, project, dataset_id)


@pytest.fixture
def worker(settings):
    from tuneyard.worker.loop import Worker

    worker = Worker(settings)
    yield worker
    worker.engine.dispose()  # its own pool: no connection left open after the tests


@pytest.fixture
def background_worker(worker):
    """The worker looping in a thread, as `tuneyard worker` runs it."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    yield worker
    stop.set()
    thread.join(timeout=30)


def wait_for(predicate, *, timeout: float = 120.0, interval: float = 0.2, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}")
