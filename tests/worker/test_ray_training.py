"""Jobs on a Ray cluster: a Ray Train run of `num_workers` DDP workers (gloo on CPU).

A local Ray head (2 CPUs, tests/ray_head.py) serves the whole session. The
same job trains once with 2 workers x 4 examples per device and once with
1 worker x 8: the same global batch of 8, so the same number of steps and
(the data split across ranks instead of one rank) nearly the same losses.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

# Relative gap allowed between the 2-worker and 1-worker loss at every step.
# Same model, seed, examples per step and learning rate, and the HF Trainer
# averages the loss over the tokens of all ranks: what differs is only the
# float summation order (two half-batches, then the gloo all-reduce). Measured
# here: below 2e-7.
LOSS_TOLERANCE = 1e-4


def job_url(project, job):
    return f"/v1/projects/{project['id']}/training-jobs/{job['id']}"


@pytest.fixture
def ray_settings(settings, ray_address):
    settings.ray_address = ray_address
    # The evaluation task beside the 2 training workers on the 2-CPU test cluster.
    settings.ray_evaluation_cpus = 0
    return settings


def test_num_workers_above_one_needs_a_ray_cluster(client, create_job, project, dataset_id):
    body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset_id,
            "parameters": {"num_workers": 2}}
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json=body)
    assert resp.status_code == 400
    assert "num_workers" in resp.text and "Ray" in resp.text
    too_many = client.post(f"/v1/projects/{project['id']}/training-jobs",
                           json={**body, "parameters": {"num_workers": 100000}})
    assert too_many.status_code == 400 and "num_workers" in too_many.text


def test_two_ray_workers_match_one_at_the_same_global_batch(settings, ray_settings, client,
                                                            project, create_job):
    """The 1-worker reference runs in the local child: the same computation as one
    Ray Train worker (no process group), and it saves a Ray run's start-up here."""
    import time

    from tuneyard.worker.loop import Worker

    # 16 training records (10 of the 26 held out): every global batch is a full 8, so
    # no rank pads its shard and each step sees the same 8 examples either way.
    split = {"train_test_split_ratio": 0.385}
    common = {"num_train_epochs": 2, "learning_rate": 0.003, "logging_steps": 1,
              "max_seq_length": 64, "seed": 7}
    one = create_job(parameters={**common, "num_workers": 1, "per_device_train_batch_size": 8},
                     **split)
    assert Worker(settings.model_copy(update={"ray_address": None})).run_once() == one["id"]
    two = create_job(parameters={**common, "num_workers": 2, "per_device_train_batch_size": 4},
                     **split)
    began = time.monotonic()
    assert Worker(ray_settings).run_once() == two["id"]
    print(f"Ray job took {time.monotonic() - began:.1f} s")
    results = {}
    for job in (two, one):
        detail = client.get(job_url(project, job)).json()
        assert detail["status"] == "Success", detail.get("error")
        losses = [p["loss"] for p in detail["training_loss"]]
        assert losses[-1] < losses[0]  # it learned
        checkpoints = client.get(job_url(project, job) + "/checkpoints").json()
        assert [c["checkpoint"] for c in checkpoints] == [1, 2]  # rank 0 published, once each
        # Evaluations ran (as a Ray task for the Ray job) and scored each checkpoint.
        assert all(c["test_results"] and c["test_results"].get("aggregated_test_result")
                   for c in checkpoints), checkpoints
        results[job["id"]] = detail["training_loss"]
    steps_two = [p["step"] for p in results[two["id"]]]
    steps_one = [p["step"] for p in results[one["id"]]]
    assert steps_two == steps_one  # the same global batch: the same number of steps
    pairs = [(p2["loss"], p1["loss"]) for p2, p1 in zip(results[two["id"]],
                                                         results[one["id"]], strict=True)]
    worst = max(abs(a - b) / b for a, b in pairs)
    print(f"2 vs 1 worker losses: {pairs}; largest relative gap {worst:.2e}")
    assert worst <= LOSS_TOLERANCE


def _train_workers() -> list[int]:
    """Pids of Ray Train worker processes (Ray titles them `ray::RayTrainWorker…`)."""
    from pathlib import Path

    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::RayTrainWorker"):
                pids.append(int(entry.name))
    return pids


@pytest.mark.faults  # about 80 s of Ray start-ups: `make test-faults`, not `make test`
def test_killed_ray_worker_resumes_and_cancel_ends_the_run(ray_settings, client, project,
                                                          create_job):
    """SIGKILL one Ray Train worker: the run fails, the worker requeues the job (its
    attempts path) and the next attempt resumes from the last checkpoint, numbering
    on; then cancel ends the driver, and Ray ends the training workers with it."""
    import os
    import signal
    import threading

    from tests.worker.conftest import wait_for
    from tuneyard.worker.loop import Worker

    worker = Worker(ray_settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        job = create_job(parameters={"num_train_epochs": 500, "save_strategy": "steps",
                                     "save_steps": 2, "num_workers": 2,
                                     "per_device_train_batch_size": 4})
        url = job_url(project, job)
        wait_for(lambda: client.get(url + "/checkpoints").json(), timeout=180,
                 what="a first checkpoint")
        victims = _train_workers()
        assert victims, "no Ray Train worker process found"
        os.kill(victims[-1], signal.SIGKILL)
        wait_for(lambda: client.get(url).json().get("attempts", 0) >= 2 or any(
            "resuming from checkpoint" in e["message"]
            for e in client.get(url + "/events").json()), timeout=120, what="a second attempt")
        seen = len(client.get(url + "/checkpoints").json())
        wait_for(lambda: len(client.get(url + "/checkpoints").json()) > seen + 1,
                 timeout=180, what="checkpoints after the resume")
        numbers = [c["checkpoint"] for c in client.get(url + "/checkpoints").json()]
        assert numbers == list(range(1, len(numbers) + 1))  # contiguous across attempts
        assert client.post(url + "/cancel").status_code == 204
        wait_for(lambda: client.get(url).json()["status"] == "Cancelled", timeout=30,
                 what="Cancelled")
        wait_for(lambda: not _train_workers(), timeout=30, what="the Ray Train workers to end")
    finally:
        stop.set()
        thread.join(timeout=30)
