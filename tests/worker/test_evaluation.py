"""Every checkpoint gets real test results, beside training; best-k retention,
early stopping, test functions and a broken evaluation, through the real worker."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def job_url(project, job):
    return f"/v1/projects/{project['id']}/training-jobs/{job['id']}"


def fetch(client, url):
    resp = client.get(url.removeprefix("http://testserver"))
    assert resp.status_code == 200, resp.text
    return resp


def test_checkpoints_carry_test_results_and_a_baseline(client, project, create_job, worker,
                                                       settings):
    (settings.home / "test_functions").mkdir(parents=True)
    (settings.home / "test_functions" / "mine.py").write_text(
        "def ends_with_letter(input_text, expected_output, predicted_output):\n"
        "    return float(predicted_output[-1:].isalpha())\n"
        "def explodes(input_text, expected_output, predicted_output):\n"
        "    raise RuntimeError('boom')\n"
    )
    listed = {f["name"]: f for f in client.get("/v1/testing-functions").json()}
    assert {"exact_match", "rouge_l", "chrf", "ends_with_letter", "explodes"} <= set(listed)
    assert "isalpha" in listed["ends_with_letter"]["content"]
    assert listed["ends_with_letter"]["builtin"] is False

    job = create_job(test_functions=["ends_with_letter", "explodes", "rouge_l"])
    worker.run_once()
    detail = client.get(job_url(project, job)).json()
    assert detail["status"] == "Success", detail.get("error")
    checkpoints = client.get(job_url(project, job) + "/checkpoints").json()
    assert len(checkpoints) == 3
    test_size = 26 - 21  # 26 records, 20% held out deterministically
    for c in checkpoints:
        assert c["test_status"] == "done", c
        metrics = c["test_results"]["aggregated_test_result"]
        assert {"loss", "perplexity", "token_accuracy", "exact_match", "rouge_l", "chrf",
                "num_examples", "eval_seconds", "ends_with_letter", "explodes"} <= set(metrics)
        assert all(isinstance(v, str) for v in metrics.values())
        assert math.isclose(float(metrics["perplexity"]), math.exp(float(metrics["loss"])),
                            rel_tol=1e-3)
        assert int(float(metrics["num_examples"])) == test_size
        assert metrics["explodes"] == "nan"  # a raising function is contained
        rows = [json.loads(line) for line in
                fetch(client, c["test_results"]["general_test_result"]).text.splitlines()]
        assert len(rows) == test_size
        assert {"input", "expected_output", "predicted_output", "loss"} <= set(rows[0])
        mean = sum(r["test_functions"]["ends_with_letter"] for r in rows) / len(rows)
        assert math.isclose(float(metrics["ends_with_letter"]), mean, rel_tol=1e-4)
        assert all(r["test_functions"]["explodes"] is None for r in rows)
        assert c["updated_at"] >= c["created_at"]
        # The training loop no longer computes it: the evaluation's test loss is the eval loss.
        assert c["eval_loss"] == pytest.approx(float(metrics["loss"]), rel=1e-6)

    baseline = detail["baseline_test_results"]
    assert baseline["status"] == "done"
    base_loss = float(baseline["aggregated_test_result"]["loss"])
    def loss(c):
        return float(c["test_results"]["aggregated_test_result"]["loss"])

    best = min(checkpoints, key=loss)
    assert loss(best) < base_loss
    assert detail["best_checkpoint"] == best["checkpoint"]


def test_unknown_test_function_is_400(client, project, dataset_id):
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset_id,
        "test_functions": ["no_such_function"]})
    assert resp.status_code == 400 and "no_such_function" in resp.json()["error"]


def test_keep_checkpoints_keeps_best_k_and_the_latest(client, project, create_job, worker):
    job = create_job(parameters={"num_train_epochs": 5, "keep_checkpoints": 1})
    worker.run_once()
    checkpoints = client.get(job_url(project, job) + "/checkpoints").json()
    assert [c["checkpoint"] for c in checkpoints] == [1, 2, 3, 4, 5]
    detail = client.get(job_url(project, job)).json()
    kept = {c["checkpoint"] for c in checkpoints if not c["pruned"]}
    assert kept == {detail["best_checkpoint"], 5}
    for c in checkpoints:
        assert (c["model_download_url"] is None) == c["pruned"]
        assert c["test_results"] is not None  # results stay after pruning


def test_early_stopping_ends_the_job_as_success(client, project, create_job, worker):
    # A learning rate this high makes the loss stop improving quickly.
    job = create_job(parameters={"num_train_epochs": 40, "learning_rate": 0.5,
                                 "early_stopping_patience": 1, "save_strategy": "steps",
                                 "save_steps": 1})
    worker.run_once()
    detail = client.get(job_url(project, job)).json()
    assert detail["status"] == "Success", detail.get("error")
    numbers = [c["checkpoint"] for c in client.get(job_url(project, job) + "/checkpoints").json()]
    total_steps = 40 * 3  # 21 train records / batch 8 = 3 steps per epoch
    assert numbers and len(numbers) < total_steps


def test_a_broken_evaluation_is_recorded_and_the_job_still_succeeds(
        client, project, create_job, worker, settings):
    job = create_job(parameters={"num_train_epochs": 1})
    # Results cannot be written: a file sits where their folder must go.
    blocker = (settings.home.parent / "artifacts" / "projects" / project["id"] / "jobs"
               / job["id"] / "results")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    worker.run_once()
    detail = client.get(job_url(project, job)).json()
    assert detail["status"] == "Success"
    [checkpoint] = client.get(job_url(project, job) + "/checkpoints").json()
    assert checkpoint["test_status"] == "failed"
    assert checkpoint["test_error"] and checkpoint["test_results"] is None
    assert checkpoint["model_download_url"]
    assert detail["baseline_test_results"]["status"] == "failed"
