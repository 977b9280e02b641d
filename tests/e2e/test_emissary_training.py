"""The unmodified Emissary SDK drives training jobs against a real server whose
embedded worker really trains: create, list, get, checkpoints, cancel, delete."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

ROWS = [{"prompt": f"say {c}:", "completion": f" {c}{c}{c}"} for c in "abcdefghijklmnop"]


@pytest.fixture(scope="module")
def project(emissary) -> dict:
    return emissary.ok("create_project", "training-e2e")


@pytest.fixture(scope="module")
def dataset(emissary, project, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("data") / "pattern.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return emissary.ok("create_dataset", project["id"], str(path), "pattern")


def body(dataset, **params) -> str:
    return json.dumps({
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset["id"],
        "train_test_split_ratio": 0.25, "name": params.pop("name", None) or "sdk-job",
        "parameters": {"num_train_epochs": 2, "logging_steps": 1, "max_seq_length": 64,
                       **params},
    })


def wait_status(emissary, project, job_id, statuses, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = emissary.ok("get_training_job", project["id"], job_id)
        if job["status"] in statuses:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def test_sdk_trains_and_lists_checkpoints(emissary, project, dataset):
    created = emissary.ok("create_training_job", project["id"], body(dataset))
    assert created["status"] == "Pending" and created["id"].startswith("tr-")
    listed = emissary.ok("list_training_jobs", project["id"])
    assert created["id"] in [j["id"] for j in listed]
    job = wait_status(emissary, project, created["id"], {"Success", "Failed"})
    assert job["status"] == "Success", job
    assert job["progress"] == 100
    assert job["train_dataset"]["id"] == dataset["id"]
    assert job["hyper_parameters"]["num_train_epochs"] == 2
    losses = [p["loss"] for p in job["training_loss"]]
    assert losses and losses[-1] < losses[0]

    checkpoints = emissary.ok("list_checkpoints", project["id"], created["id"])
    assert [c["checkpoint"] for c in checkpoints] == [1, 2]
    archive = httpx.get(checkpoints[-1]["model_download_url"], timeout=60)
    assert archive.status_code == 200
    assert archive.headers["x-checksum-sha256"] == hashlib.sha256(archive.content).hexdigest()


def test_sdk_cancels_and_deletes(emissary, project, dataset):
    created = emissary.ok("create_training_job", project["id"],
                          body(dataset, name="long", num_train_epochs=300))
    wait_status(emissary, project, created["id"], {"Running"})
    assert emissary.ok("cancel_training_job", project["id"], created["id"]) is None
    job = wait_status(emissary, project, created["id"], {"Cancelled"}, timeout=15)
    assert job["status"] == "Cancelled"
    assert emissary.ok("delete_training_job", project["id"], created["id"]) is None
    err = emissary.error("get_training_job", project["id"], created["id"])
    assert err["status"] == 404


def test_sdk_gets_a_clear_400_for_a_bad_job(emissary, project, dataset):
    bad = json.loads(body(dataset))
    bad["parameters"]["learning_rat"] = 0.1
    err = emissary.error("create_training_job", project["id"], json.dumps(bad))
    assert err["status"] == 400 and "learning_rat" in err["message"]
