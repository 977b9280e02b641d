"""Jobs on a Ray cluster: a Ray Train run of `num_workers` DDP workers (gloo on CPU).

A local Ray head (2 CPUs, tests/ray_head.py) serves the whole session. The
same job trains once with 2 workers x 4 examples per device and once with
1 worker x 8: the same global batch of 8, so the same number of steps and
(the data split across ranks instead of one rank) nearly the same losses.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

# Relative gap allowed between the 2-worker and 1-worker losses. Same model,
# same seed, same global batch and learning rate; what differs is which
# examples share a micro-batch (DistributedSampler vs one sampler) and the
# float summation order of the gradient all-reduce.
LOSS_TOLERANCE = 0.15


def job_url(project, job):
    return f"/v1/projects/{project['id']}/training-jobs/{job['id']}"


@pytest.fixture
def ray_settings(settings, ray_address):
    settings.ray_address = ray_address
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


def test_two_ray_workers_match_one_at_the_same_global_batch(ray_settings, client, project,
                                                            create_job):
    from tuneyard.worker.loop import Worker

    worker = Worker(ray_settings)
    common = {"num_train_epochs": 2, "learning_rate": 0.003, "logging_steps": 1,
              "max_seq_length": 64, "seed": 7}
    two = create_job(parameters={**common, "num_workers": 2, "per_device_train_batch_size": 4})
    one = create_job(parameters={**common, "num_workers": 1, "per_device_train_batch_size": 8})
    assert worker.run_once() == two["id"]
    assert worker.run_once() == one["id"]
    results = {}
    for job in (two, one):
        detail = client.get(job_url(project, job)).json()
        assert detail["status"] == "Success", detail.get("error")
        losses = [p["loss"] for p in detail["training_loss"]]
        assert losses[-1] < losses[0]  # it learned
        checkpoints = client.get(job_url(project, job) + "/checkpoints").json()
        assert [c["checkpoint"] for c in checkpoints] == [1, 2]  # rank 0 published, once each
        results[job["id"]] = detail["training_loss"]
    steps_two = [p["step"] for p in results[two["id"]]]
    steps_one = [p["step"] for p in results[one["id"]]]
    assert steps_two == steps_one  # the same global batch: the same number of steps
    final_two, final_one = results[two["id"]][-1]["loss"], results[one["id"]][-1]["loss"]
    first_two, first_one = results[two["id"]][0]["loss"], results[one["id"]][0]["loss"]
    print(f"loss 2 workers: {first_two:.4f} -> {final_two:.4f}; "
          f"1 worker: {first_one:.4f} -> {final_one:.4f}")
    assert abs(first_two - first_one) <= LOSS_TOLERANCE * first_one
    assert abs(final_two - final_one) <= LOSS_TOLERANCE * final_one
