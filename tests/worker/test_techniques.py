"""DPO and GRPO jobs run by the real worker from uploads: the child trains with TRL,
checkpoints are published and evaluated (preference accuracy; GRPO's reward),
the per-step metrics land on the job, and the best checkpoint is chosen by the
technique's metric. How much each method improves is tests/training's concern."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def upload(client, project, rows, filename) -> str:
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": (filename, content)})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def finish(client, project, worker, job) -> tuple[dict, list[dict]]:
    worker.run_once()
    url = f"/v1/projects/{project['id']}/training-jobs/{job['id']}"
    detail = client.get(url).json()
    assert detail["status"] == "Success", detail.get("error")
    return detail, client.get(url + "/checkpoints").json()


def test_dpo_chat_pairs_with_lora(client, project, worker):
    words = ("cat", "dog", "sun", "sky", "red", "blue", "tree", "fish")
    rows = [{"prompt": [{"role": "user", "content": w}],
             "chosen": [{"role": "assistant", "content": f"{w} {w}"}],
             "rejected": [{"role": "assistant", "content": "no"}]} for w in words]
    dataset = upload(client, project, rows, "prefs.jsonl")
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "tuneyard-tiny-chat", "train_dataset_id": dataset,
        "test_dataset_id": dataset, "training_technique": "DPO",
        "test_functions": ["exact_match"],
        "parameters": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                       "learning_rate": 0.02, "use_lora": True, "logging_steps": 1,
                       "eval_generate_samples": 2, "max_seq_length": 64}})
    assert resp.status_code == 201, resp.text
    detail, checkpoints = finish(client, project, worker, resp.json())
    assert detail["training_technique"] == "DPO"
    assert len(detail["training_metrics"]) == 2  # a logging step each
    assert {"rewards/accuracies", "rewards/margins"} <= set(detail["training_metrics"][-1])
    assert [c["checkpoint"] for c in checkpoints] == [1]
    for checkpoint in checkpoints:
        assert checkpoint["test_status"] == "done", checkpoint["test_error"]
        metrics = checkpoint["test_results"]["aggregated_test_result"]
        assert {"preference_accuracy", "logp_margin", "exact_match"} <= set(metrics)
        assert checkpoint["model_download_url"]
    baseline = detail["baseline_test_results"]["aggregated_test_result"]
    last = checkpoints[-1]["test_results"]["aggregated_test_result"]
    assert float(last["logp_margin"]) > float(baseline["logp_margin"])
    assert detail["best_checkpoint"] == 1


def test_grpo_job_through_the_v2_route(client, project, worker):
    rows = [{"input": " ".join("abcdefgh"[i:i + 3]), "expected_output": "Y"} for i in range(6)]
    dataset = upload(client, project, rows, "task.jsonl")
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs/grpo", json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
        "test_dataset_id": dataset, "test_functions": ["similarity"],
        "reward": {"exact_match": 1.0, "chrf": 0.5},
        "parameters": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                       "num_generations": 2, "max_completion_length": 4, "beta": 0.05,
                       "logging_steps": 1, "eval_generate_samples": 3}})
    assert resp.status_code == 201, resp.text
    detail, checkpoints = finish(client, project, worker, resp.json())
    assert detail["training_technique"] == "GRPO"
    assert detail["reward"] == {"exact_match": 1.0, "chrf": 0.5}
    steps = detail["training_metrics"]
    assert len(steps) == 3 and all("reward" in s for s in steps)
    assert all("test_functions/chrf" in s for s in steps)  # each function's own mean
    metrics = checkpoints[-1]["test_results"]["aggregated_test_result"]
    # The reward the job optimises, on the test set, beside the functions it names.
    assert {"reward", "similarity", "exact_match", "chrf"} <= set(metrics)
    expected = float(metrics["exact_match"]) + 0.5 * float(metrics["chrf"])
    assert float(metrics["reward"]) == pytest.approx(expected, abs=1e-4)
