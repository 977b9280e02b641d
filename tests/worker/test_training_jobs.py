"""Real jobs through the real worker: train, checkpoint, download, cancel, crash, resume."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile

import pytest

from tests.worker.conftest import wait_for

pytestmark = pytest.mark.slow


def job_url(project, job):
    return f"/v1/projects/{project['id']}/training-jobs/{job['id']}"


def test_job_trains_to_success_with_downloadable_checkpoints(client, project, create_job,
                                                              worker, tmp_path):
    job = create_job()
    assert worker.run_once() == job["id"]
    detail = client.get(job_url(project, job)).json()
    assert detail["status"] == "Success", detail.get("error")
    assert detail["progress"] == 100
    losses = [p["loss"] for p in detail["training_loss"]]
    assert len(losses) >= 3 and losses[-1] < losses[0]

    checkpoints = client.get(job_url(project, job) + "/checkpoints").json()
    assert [c["checkpoint"] for c in checkpoints] == [1, 2, 3]  # one per epoch
    assert all(c["test_results"] is None or "aggregated_test_result" in c["test_results"]
               for c in checkpoints)
    last = checkpoints[-1]
    assert last["created_at"] <= last["updated_at"]
    body = client.get(last["model_download_url"].removeprefix("http://testserver"))
    assert body.status_code == 200
    assert hashlib.sha256(body.content).hexdigest() == last["archive_sha256"]
    assert body.headers["x-checksum-sha256"] == last["archive_sha256"]

    target = tmp_path / "model"
    with tarfile.open(fileobj=io.BytesIO(body.content)) as tar:
        tar.extractall(target, filter="data")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    assert not (target / "state").exists()  # optimizer state is not in the download
    ids = tokenizer("say q:", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_cancel_stops_the_child_within_seconds(client, project, create_job, background_worker):
    import time

    job = create_job(parameters={"num_train_epochs": 200, "save_strategy": "steps",
                                 "save_steps": 3})
    url = job_url(project, job)
    wait_for(lambda: client.get(url + "/checkpoints").json(), what="a first checkpoint")
    started = time.monotonic()
    assert client.post(url + "/cancel").status_code == 204
    wait_for(lambda: client.get(url).json()["status"] == "Cancelled", timeout=10,
             what="Cancelled")
    assert time.monotonic() - started < 5.5
    proc = background_worker.current
    # The child publishes the checkpoint in flight before it exits: seconds,
    # but more of them when the two test processes share the cores.
    wait_for(lambda: proc.poll() is not None, timeout=15, what="the child to exit")
    checkpoints = client.get(url + "/checkpoints").json()
    assert checkpoints and all(c["model_download_url"] for c in checkpoints)
    first = client.get(checkpoints[0]["model_download_url"].removeprefix("http://testserver"))
    assert first.status_code == 200


def test_timeout_ends_the_job_as_timed_out(client, project, create_job, background_worker,
                                           monkeypatch):
    from tuneyard import policy

    # The training loop stops itself at the deadline and records TimedOut; the worker
    # ends the process only a grace period later. A long grace makes sure it is the loop
    # that ends this job (the worker records the same outcome when it has to).
    monkeypatch.setattr(policy, "TIMEOUT_GRACE_SECONDS", 600.0)
    job = create_job(parameters={"num_train_epochs": 500, "timeout_seconds": 3})
    url = job_url(project, job)
    final = wait_for(lambda: (d := client.get(url).json())["status"] in
                     ("TimedOut", "Cancelled", "Success", "Failed") and d, timeout=180,
                     what="an end")
    assert final["status"] == "TimedOut"
    assert final["error"] == "the job exceeded timeout_seconds=3"


def test_killed_child_is_resumed_from_its_latest_checkpoint(client, project, create_job,
                                                             background_worker):
    # 12 steps, a checkpoint every 3: the kill lands after the first of four, with
    # steps enough left that training (no eval loss in its loop) has not ended yet.
    params = {"num_train_epochs": 4, "save_strategy": "steps", "save_steps": 3}
    job = create_job(parameters=params)
    url = job_url(project, job)
    wait_for(lambda: client.get(url + "/checkpoints").json(), what="a first checkpoint")
    proc = background_worker.current
    os.killpg(proc.pid, signal.SIGKILL)
    final = wait_for(lambda: (d := client.get(url).json())["status"] in
                     ("Success", "Failed") and d, timeout=180, what="the job to end")
    assert final["status"] == "Success", final.get("error")
    assert final["attempts"] == 2
    numbers = [c["checkpoint"] for c in client.get(url + "/checkpoints").json()]
    assert numbers == list(range(1, len(numbers) + 1))

    # The same job uninterrupted takes the same number of steps.
    again = create_job(parameters=params)
    wait_for(lambda: client.get(job_url(project, again)).json()["status"] == "Success",
             timeout=180, what="the uninterrupted job")
    steps = [c["step"] for c in client.get(url + "/checkpoints").json()]
    steps_again = [c["step"] for c in client.get(job_url(project, again) + "/checkpoints").json()]
    assert steps[-1] == steps_again[-1]


def test_continued_training_starts_from_the_checkpoint(client, project, create_job, worker,
                                                       dataset_id):
    first = create_job(name="base-run")
    worker.run_once()
    ckpts = client.get(job_url(project, first) + "/checkpoints").json()
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "base-run", "base_model_option": "fine-tuned", "checkpoint": 3,
        "train_dataset_id": dataset_id, "train_test_split_ratio": 0.2,
        "parameters": {"num_train_epochs": 1, "logging_steps": 1, "max_seq_length": 64},
    })
    assert resp.status_code == 201, resp.text
    second = resp.json()
    worker.run_once()
    detail = client.get(job_url(project, second)).json()
    assert detail["status"] == "Success", detail.get("error")
    assert detail["base_fine_tuned_model"] == "base-run"
    assert detail["base_fine_tuned_model_checkpoint"] == 3
    # Starting from trained weights, the first logged loss is already near the
    # end of the first job, far below a fresh model's first loss.
    first_losses = [p["loss"] for p in client.get(job_url(project, first)).json()[
        "training_loss"]]
    assert detail["training_loss"][0]["loss"] < first_losses[0] * 0.8
    assert ckpts[-1]["eval_loss"] is not None


def test_unloadable_model_fails_the_job_clearly(client, project, create_job, worker):
    job = create_job(hf_model_link="https://huggingface.co/nobody/not-cached-model")
    worker.run_once()
    detail = client.get(job_url(project, job)).json()
    assert detail["status"] == "Failed"
    assert "nobody/not-cached-model" in detail["error"] and "offline" in detail["error"]


def test_deleting_a_running_job_cancels_it_and_removes_everything(client, project, app,
                                                                   create_job,
                                                                   background_worker):
    job = create_job(parameters={"num_train_epochs": 200, "save_strategy": "steps",
                                 "save_steps": 3})
    url = job_url(project, job)
    wait_for(lambda: client.get(url + "/checkpoints").json(), what="a first checkpoint")
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    proc = background_worker.current
    wait_for(lambda: proc.poll() is not None, timeout=10, what="the child to exit")
    assert app.state.store.list(f"projects/{project['id']}/jobs/{job['id']}/") == []
