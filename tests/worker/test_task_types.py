"""The task types beyond plain completions, each trained by the real worker from an
Emissary-format upload: chat messages, multi-label classification, embedding pairs."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def run(client, project, worker, rows, filename, body):
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    dataset = client.post(f"/v1/projects/{project['id']}/datasets",
                          files={"file": (filename, content)}).json()["id"]
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs",
                       json={"train_dataset_id": dataset, "test_dataset_id": dataset, **body})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    worker.run_once()
    url = f"/v1/projects/{project['id']}/training-jobs/{job['id']}"
    detail = client.get(url).json()
    assert detail["status"] == "Success", detail.get("error")
    return detail, client.get(url + "/checkpoints").json()


def test_chat_messages_train_a_chat_model(client, project, worker):
    rows = [{"messages": [{"role": "system", "content": "Echo twice."},
                          {"role": "user", "content": w},
                          {"role": "assistant", "content": f"{w} {w}"}]}
            for w in ("cat", "dog", "sun", "sky", "red", "blue", "tree", "fish")]
    detail, checkpoints = run(client, project, worker, rows, "chat.jsonl", {
        "base_model": "tuneyard-tiny-chat",
        "parameters": {"num_train_epochs": 3, "logging_steps": 1, "max_seq_length": 96}})
    assert detail["task_type"] == "text-generation"
    losses = [p["loss"] for p in detail["training_loss"]]
    assert losses[-1] < losses[0]
    metrics = checkpoints[-1]["test_results"]["aggregated_test_result"]
    assert float(metrics["num_examples"]) == 8


def test_multi_label_classification(client, project, worker):
    rows = [{"prompt": text, "completion": labels} for text, labels in [
        ("sunny and warm", {"weather": 1, "mood": 0}),
        ("I feel happy", {"weather": 0, "mood": 1}),
        ("rainy, I feel sad", {"weather": 1, "mood": 1}),
        ("cold wind today", {"weather": 1, "mood": 0}),
        ("so cheerful", {"weather": 0, "mood": 1}),
        ("stormy and I am angry", {"weather": 1, "mood": 1}),
    ]]
    detail, checkpoints = run(client, project, worker, rows, "multi.jsonl", {
        "base_model": "all-MiniLM-L6-v2-classifier",
        "parameters": {"num_train_epochs": 1, "per_device_train_batch_size": 3}})
    assert detail["task_type"] == "classification"
    assert detail["hyper_parameters"]["metric_for_best_model"] == "accuracy"
    metrics = checkpoints[-1]["test_results"]["aggregated_test_result"]
    assert {"accuracy", "macro_f1", "micro_f1", "hamming_loss"} <= set(metrics)


def test_embedding_pairs(client, project, worker):
    rows = [{"text1": a, "text2": b, "score": s} for a, b, s in [
        ("a cat", "a kitten", 0.9), ("a cat", "a car", 0.1), ("the sea", "the ocean", 0.95),
        ("the sea", "a desk", 0.05), ("fast", "quick", 0.9), ("fast", "purple", 0.1)]]
    detail, checkpoints = run(client, project, worker, rows, "pairs.jsonl", {
        "base_model": "all-MiniLM-L6-v2",
        "parameters": {"num_train_epochs": 1, "per_device_train_batch_size": 3}})
    assert detail["task_type"] == "embedding"
    metrics = checkpoints[-1]["test_results"]["aggregated_test_result"]
    assert {"spearman", "pearson", "mse"} <= set(metrics)
    assert detail["best_checkpoint"] == checkpoints[-1]["checkpoint"]
