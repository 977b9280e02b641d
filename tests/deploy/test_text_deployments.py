"""Deploying a trained tiny LM checkpoint: Emissary and OpenAI-style routes give
the same text as `generate` on the same weights; streaming, limits, errors."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest

from tests.worker.conftest import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(client, project, create_job, worker, tmp_path_factory):
    """One trained job for the module: (job, its last checkpoint number, its weights)."""
    job = create_job(parameters={"num_train_epochs": 2})
    worker.run_once()
    url = f"/v1/projects/{project['id']}/training-jobs/{job['id']}/checkpoints"
    last = client.get(url).json()[-1]
    archive = client.get(last["model_download_url"].removeprefix("http://testserver")).content
    target = tmp_path_factory.mktemp("weights")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return job, last["checkpoint"], target


def greedy(model_dir, prompt: str, max_new_tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)


def test_deployed_checkpoint_answers_like_generate(client, project, trained, deploy):
    job, number, weights = trained
    dep = deploy(job["id"], number, name="tiny")
    assert dep["training_id"] == job["id"] and dep["checkpoint"] == number and dep["active"]
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"

    resp = client.post(base + "/completions", json={"prompt": "say k:", "max_new_tokens": 6})
    assert resp.status_code == 200, resp.text
    assert resp.json()["response"] == greedy(weights, "say k:", 6)
    assert resp.json()["id"]

    # OpenAI-style route, addressed by the deployment's name
    resp = client.post("/v1/completions", json={"model": "tiny", "prompt": "say k:",
                                                "max_tokens": 6, "temperature": 0})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["text"] == greedy(weights, "say k:", 6)
    assert resp.json()["usage"]["completion_tokens"] <= 6

    messages = [{"role": "user", "content": "say q:"}]
    plain = client.post(base + "/chat/completions",
                        json={"messages": messages, "max_new_tokens": 8})
    assert plain.status_code == 200, plain.text
    # streaming: SSE deltas concatenate to the final response
    with client.stream("POST", base + "/chat/completions",
                       json={"messages": messages, "max_new_tokens": 8, "streaming": True},
                       headers={"Accept": "text/event-stream"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in stream.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    deltas = "".join(e.get("delta", "") for e in events)
    assert events[-1]["response"] == deltas == plain.json()["response"]
    # a client that accepts only JSON (the Emissary SDK) gets JSON even when streaming
    as_json = client.post(base + "/chat/completions",
                          json={"messages": messages, "max_new_tokens": 8, "streaming": True},
                          headers={"Accept": "application/json"})
    assert as_json.json()["response"] == plain.json()["response"]

    # the official openai package, in-process over the same HTTP app
    from openai import OpenAI

    from tests.conftest import ADMIN_KEY

    openai = OpenAI(base_url="http://testserver/v1", api_key=ADMIN_KEY, http_client=client)
    chat = openai.chat.completions.create(model="tiny", messages=messages, max_tokens=8)
    assert chat.choices[0].message.content == plain.json()["response"]
    streamed = openai.chat.completions.create(model=dep["id"], messages=messages,
                                              max_tokens=8, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == plain.json()["response"]

    # The dashboard's playground: a streamed completion is the greedy text; the
    # sampling controls reach the model (a max_new_tokens of 2 cuts it short).
    from tests.web.signin import sign_in

    play = f"/projects/{project['id']}/deployments/{dep['id']}/try/complete"
    token = sign_in(client)

    def streamed_text(**body) -> str:
        with client.stream("POST", play, json={"prompt": "say k:", **body},
                           headers={"X-CSRF-Token": token}) as stream:
            assert stream.status_code == 200
            chunks = [json.loads(line[6:]) for line in stream.iter_lines()
                      if line.startswith("data: ") and line != "data: [DONE]"]
        return "".join(c["choices"][0]["text"] for c in chunks)

    assert streamed_text(max_new_tokens=6) == greedy(weights, "say k:", 6)
    assert greedy(weights, "say k:", 6).startswith(streamed_text(max_new_tokens=2))
    refused = client.post(play, json={"prompt": "x", "top_p": 3},
                          headers={"X-CSRF-Token": token})
    assert refused.status_code == 400 and "top_p" in refused.text


def test_bad_requests_are_4xx_with_reasons(client, project, trained, deploy):
    job, number, _ = trained
    dep = deploy(job["id"], number)
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    cases = [
        ("/completions", {"prompt": "x", "temperature": -1}, "temperature"),
        ("/completions", {"prompt": "x", "top_p": 1.5}, "top_p"),
        ("/completions", {"prompt": "x", "max_new_tokens": 10**6}, "max_new_tokens"),
        ("/completions", {"temperature": 0.5}, "prompt"),
        ("/classification", {"source_sentence": "x"}, "text-generation"),
        ("/embeddings", {"source_sentence": "x", "target_sentence": "y"}, "text-generation"),
    ]
    for path, body, expected in cases:
        resp = client.post(base + path, json=body)
        assert resp.status_code == 400, (path, body, resp.text)
        assert expected in resp.json()["error"], resp.json()
    resp = client.post("/v1/chat/completions", json={"model": "nope", "messages": [
        {"role": "user", "content": "hi"}]})
    assert resp.status_code == 404 and "nope" in resp.json()["error"]
    for body, expected in [({"training_job_id": job["id"], "checkpoint": 99}, "checkpoint"),
                           ({"training_job_id": "tr-none", "checkpoint": 1}, "training_job_id"),
                           ({"training_job_id": job["id"], "checkpoint": 1,
                             "server_type": "gpu"}, "server_type")]:
        resp = client.post(f"/v1/projects/{project['id']}/deployments", json=body)
        assert resp.status_code == 400 and expected in resp.json()["error"], resp.text
    # cancelled: unloaded, and requests say why
    assert client.post(base + "/cancel").status_code == 204
    assert client.get(base).json()["status"] == "Cancelled"
    resp = client.post(base + "/completions", json={"prompt": "x"})
    assert resp.status_code == 400 and "Cancelled" in resp.json()["error"]


def test_concurrent_requests_each_get_their_own_answer(client, project, trained, deploy):
    job, number, weights = trained
    dep = deploy(job["id"], number)
    url = f"/v1/projects/{project['id']}/deployments/{dep['id']}/completions"
    prompts = [f"say {c}:" for c in "abcdef"]
    answers: dict[str, str] = {}

    def ask(prompt: str) -> None:
        answers[prompt] = client.post(url, json={"prompt": prompt, "max_new_tokens": 5}).json()[
            "response"]

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == {p: greedy(weights, p, 5) for p in prompts}


def test_idle_deployments_deactivate_and_come_back(client, project, trained, deploy):
    job, number, _ = trained
    dep = deploy(job["id"], number, inactive_timeout=2)
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    first = client.post(base + "/completions", json={"prompt": "say a:", "max_new_tokens": 4})
    wait_for(lambda: not client.get(base).json()["active"], timeout=30, what="deactivation")
    assert client.get(base).json()["status"] == "Deployed"
    again = client.post(base + "/completions", json={"prompt": "say a:", "max_new_tokens": 4})
    assert again.status_code == 200 and again.json()["response"] == first.json()["response"]
    assert client.get(base).json()["active"] is True
    wait_for(lambda: not client.get(base).json()["active"], timeout=30, what="deactivation")
    assert client.post(base + "/reactivate").status_code == 204
    assert client.get(base).json()["active"] is True
    assert client.post(base + "/reactivate").status_code == 400  # already active
    assert client.delete(base).status_code == 204
    assert client.get(base).status_code == 404


def test_serverless_loads_on_first_request(client, project, trained, deploy):
    job, number, _ = trained
    dep = deploy(job["id"], number, server_type="serverless")
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    wait_for(lambda: client.get(base).json()["status"] == "Deployed", what="Deployed")
    assert client.get(base).json()["active"] is False
    resp = client.post(base + "/completions", json={"prompt": "say b:", "max_new_tokens": 3})
    assert resp.status_code == 200
    assert client.get(base).json()["active"] is True
    listed = client.get(f"/v1/projects/{project['id']}").json()["deployments"]
    assert dep["id"] in [d["id"] for d in listed]


def test_a_second_replica_forwards_to_the_lifecycle_driver(settings, client, project, trained,
                                                           deploy, tmp_path):
    """Two API replicas on one database and store: requests to the one not holding
    the lifecycle lease reach the model server the holder runs (and a serverless
    deployment first requested there is loaded by the holder)."""
    from tests.conftest import make_settings, serving

    job, number, _ = trained
    dep = deploy(job["id"], number)
    base = f"/v1/projects/{project['id']}/deployments/{dep['id']}"
    prompt = {"prompt": "say c:", "max_new_tokens": 4}
    direct = client.post(base + "/completions", json=prompt)
    replica = make_settings(tmp_path, settings.database_url)
    replica.storage_url = settings.storage_url
    with serving(replica) as (app, other):
        manager = app.state.deployments
        assert manager.leader is False
        forwarded = other.post(base + "/completions", json=prompt)
        assert forwarded.status_code == 200, forwarded.text
        assert forwarded.json()["response"] == direct.json()["response"]
        assert other.get(base).json()["active"] is True
        assert manager.running == {}  # no model server of its own

        created = other.post(f"/v1/projects/{project['id']}/deployments", json={
            "training_job_id": job["id"], "checkpoint": number, "server_type": "serverless"})
        lazy = f"/v1/projects/{project['id']}/deployments/{created.json()['id']}"
        wait_for(lambda: other.get(lazy).json()["status"] == "Deployed", what="Deployed")
        answer = other.post(lazy + "/completions", json=prompt)
        assert answer.status_code == 200 and answer.json()["response"] == direct.json()["response"]
        assert manager.running == {}
        assert other.delete(lazy).status_code == 204
        assert other.delete(base).status_code == 204
