"""Against a real server: the Emissary SDK drives every deployment operation and
per-deployment route, and the official `openai` package drives the v2 routes."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

ROWS = [{"prompt": f"say {c}:", "completion": f" {c}{c}{c}"} for c in "abcdefghijkl"]


@pytest.fixture(scope="module")
def project(emissary) -> dict:
    return emissary.ok("create_project", "deploy-e2e")


@pytest.fixture(scope="module")
def trained_job(emissary, project, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("data") / "pattern.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    dataset = emissary.ok("create_dataset", project["id"], str(path), "pattern")
    job = emissary.ok("create_training_job", project["id"], json.dumps({
        "base_model": "tuneyard-tiny-chat", "train_dataset_id": dataset["id"],
        "parameters": {"num_train_epochs": 1, "max_seq_length": 64}}))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = emissary.ok("get_training_job", project["id"], job["id"])
        if job["status"] in ("Success", "Failed"):
            break
        time.sleep(1)
    assert job["status"] == "Success", job
    return job


def wait_deployed(emissary, project, dep_id):
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        dep = emissary.ok("get_deployment", project["id"], dep_id)
        if dep["status"] in ("Deployed", "Failed"):
            return dep
        time.sleep(0.5)
    raise AssertionError(f"deployment {dep_id} never deployed")


def test_sdk_deploys_and_queries_a_checkpoint(emissary, project, trained_job, live_server):
    created = emissary.ok("create_deployment", project["id"], json.dumps({
        "training_job_id": trained_job["id"], "checkpoint": 1, "name": "e2e-chat",
        "server_type": "on-demand"}))
    assert created["id"].startswith("dp-") and created["status"] in ("Pending", "Deploying")
    dep = wait_deployed(emissary, project, created["id"])
    assert dep["status"] == "Deployed" and dep["checkpoint"] == 1
    assert dep["training_id"] == trained_job["id"]
    assert created["id"] in [d["id"] for d in emissary.ok("list_deployments", project["id"])]

    args = (project["id"], created["id"])
    completion = emissary.ok("completions", *args, json.dumps(
        {"prompt": "say c:", "max_new_tokens": 5}))
    assert isinstance(completion["response"], str) and completion["id"]
    chat = emissary.ok("chat_completions", *args, json.dumps(
        {"messages": [{"role": "user", "content": "say d:"}], "max_new_tokens": 5,
         "streaming": True}))  # the SDK accepts JSON only: it gets the whole answer
    assert isinstance(chat["response"], str)
    err = emissary.error("classification", *args, json.dumps({"source_sentence": "x"}))
    assert err["status"] == 400 and "text-generation" in err["message"]
    err = emissary.error("completions", *args, json.dumps({"prompt": "x", "top_p": 3}))
    assert err["status"] == 400 and "top_p" in err["message"]

    # The official openai package, base_url …/v1, the key as a Bearer token.
    from openai import OpenAI

    client = OpenAI(base_url=live_server.url + "/v1", api_key=live_server.key)
    messages = [{"role": "user", "content": "say d:"}]
    plain = client.chat.completions.create(model="e2e-chat", messages=messages, max_tokens=5)
    assert plain.choices[0].message.content == chat["response"]
    stream = client.chat.completions.create(model="e2e-chat", messages=messages, max_tokens=5,
                                            stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == chat["response"]
    text = client.completions.create(model="e2e-chat", prompt="say c:", max_tokens=5)
    assert text.choices[0].text == completion["response"]

    assert emissary.ok("cancel_deployment", *args) is None
    assert emissary.ok("get_deployment", *args)["status"] == "Cancelled"
    assert emissary.ok("delete_deployment", *args) is None
    assert emissary.error("get_deployment", *args)["status"] == 404


def test_sdk_embeddings_and_openai_embeddings_on_a_base_model(emissary, project, live_server):
    created = emissary.ok("create_deployment", project["id"], json.dumps({
        "training_job_id": "all-MiniLM-L6-v2", "checkpoint": 0, "name": "e2e-embed"}))
    dep = wait_deployed(emissary, project, created["id"])
    assert dep["status"] == "Deployed"
    result = emissary.ok("embeddings", project["id"], created["id"], json.dumps(
        {"source_sentence": "a cat", "target_sentence": "a kitten", "cosine": True}))
    vector = result["response"]["embeddings"]["text1"]
    assert len(vector) == 384 and 0 < result["response"]["cosine_score"] <= 1

    from openai import OpenAI

    client = OpenAI(base_url=live_server.url + "/v1", api_key=live_server.key)
    got = client.embeddings.create(model="e2e-embed", input=["a cat", "a kitten"])
    assert len(got.data) == 2
    assert got.data[0].embedding == pytest.approx(vector, abs=1e-5)
