"""The records a job trains on, counted from what the trainer did, through the real worker.

With one example per batch, one epoch and no gradient accumulation, the trainer takes one
optimizer step per training record, so a checkpoint's `step` is the number of records the
trainer saw: the observable for the split, downsampling and rebalancing, each applied
exactly once.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

# One record per batch and one pass: optimizer steps == training records seen.
ONE_STEP_PER_RECORD = {"num_train_epochs": 1, "per_device_train_batch_size": 1,
                       "gradient_accumulation_steps": 1, "logging_steps": 1,
                       "max_seq_length": 32, "eval_generate_samples": 0}


def _upload(client, project, rows: list[dict], name: str) -> str:
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": (f"{name}.jsonl", content)}, data={"name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _completions(n: int) -> list[dict]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [{"prompt": f"say {letters[i % 26]}{i}:", "completion": f" {letters[i % 26]}"}
            for i in range(n)]


def _train(client, project, worker, body: dict) -> tuple[dict, list[dict]]:
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json=body)
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert worker.run_once() == job["id"]
    url = f"/v1/projects/{project['id']}/training-jobs/{job['id']}"
    detail = client.get(url).json()
    assert detail["status"] == "Success", detail.get("error")
    checkpoints = client.get(url + "/checkpoints").json()
    assert len(checkpoints) == 1, checkpoints  # one epoch, one checkpoint
    return detail, checkpoints


def test_downsample_size_trains_on_that_share_of_the_training_split(client, project, worker):
    # 40 records, a quarter held out: 30 to train on; downsample_size 50 keeps 15 of them.
    dataset = _upload(client, project, _completions(40), "forty")
    detail, (checkpoint,) = _train(client, project, worker, {
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
        "train_test_split_ratio": 0.25,
        "parameters": {**ONE_STEP_PER_RECORD, "downsample_size": 50}})
    assert checkpoint["step"] == 15
    assert len(detail["training_loss"]) == 15  # one logged loss per step
    # ... and the learning rate beside it (the dashboard's learning-rate curve).
    rates = [p["learning_rate"] for p in detail["training_metrics"]]
    assert len(rates) == 15 and rates[0] > rates[-1] > 0  # the linear schedule decays


def test_split_ratio_holds_out_that_share_for_testing(client, project, worker):
    # A percentage (the v2 form): 20 records, 25% held out -> 15 train, 5 test.
    dataset = _upload(client, project, _completions(20), "twenty")
    _, (checkpoint,) = _train(client, project, worker, {
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
        "train_test_split_ratio": 25, "parameters": ONE_STEP_PER_RECORD})
    assert checkpoint["step"] == 15
    results = checkpoint["test_results"]["aggregated_test_result"]
    assert float(results["num_examples"]) == 5


def test_rebalance_data_resamples_the_labels_before_training(client, project, worker):
    # 8 "pos" and 4 "neg" records rebalanced to counts: 3 pos (drawn) and 7 neg (4 plus 3
    # drawn again) -> 10 records trained on. A separate test set keeps the split out of it.
    rows = ([{"prompt": f"good thing {i}", "completion": {"pos": 1, "neg": 0}} for i in range(8)]
            + [{"prompt": f"bad thing {i}", "completion": {"pos": 0, "neg": 1}}
               for i in range(4)])
    train = _upload(client, project, rows, "twelve")
    test = _upload(client, project, rows[::4], "three")
    _, (checkpoint,) = _train(client, project, worker, {
        "base_model": "tuneyard-tiny-lm", "task_type": "classification",
        "train_dataset_id": train, "test_dataset_id": test,
        "rebalance_data": {"pos": 3, "neg": 7}, "parameters": ONE_STEP_PER_RECORD})
    assert checkpoint["step"] == 10
