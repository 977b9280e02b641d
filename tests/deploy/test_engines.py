"""Inference engines end to end: three LoRA checkpoints of one trained job on one
engine (one model server, the base loaded once); each answers exactly as the
standalone model server code does on the same checkpoint; concurrent requests
across adapters are batched and answered correctly; undeploy, deactivate and
reactivate; schedules with an injected clock; bad deploys are 400s."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.worker.conftest import wait_for

pytestmark = pytest.mark.slow
PROMPTS = ("say k:", "ab", "hello")
TOKENS = 8


@pytest.fixture(scope="module")
def lora_job(client, project, create_job, worker, tmp_path_factory):
    """One LoRA job with three checkpoints: (job, {number: local weights dir})."""
    job = create_job(parameters={"num_train_epochs": 3, "use_lora": True, "lora_r": 4})
    worker.run_once()
    url = f"/v1/projects/{project['id']}/training-jobs/{job['id']}/checkpoints"
    checkpoints = client.get(url).json()
    assert len(checkpoints) == 3, checkpoints
    weights = {}
    for ckpt in checkpoints:
        archive = client.get(ckpt["model_download_url"].removeprefix("http://testserver")).content
        target = tmp_path_factory.mktemp(f"ckpt{ckpt['checkpoint']}")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        weights[ckpt["checkpoint"]] = target
    return job, weights


@pytest.fixture(scope="module")
def expected(lora_job, app):
    """What a standalone deployment answers: the model server's own loader
    (adapter merged into its own copy of the base), greedy."""
    from tuneyard.deploy.prepare import resolve_source
    from tuneyard.serving.loaded import load_for_serving

    _, weights = lora_job
    base = resolve_source("builtin:tiny-lm", home=app.state.settings.home)
    answers = {}
    for number, path in weights.items():
        model = load_for_serving(str(path), task_type="text-generation", base_model_path=base,
                                 device="cpu")
        answers[number] = {p: model.complete(p, max_new_tokens=TOKENS).text for p in PROMPTS}
        model.close()
    # Three epochs of training must give three different adapters, or the
    # comparisons below prove nothing.
    assert len({tuple(a.values()) for a in answers.values()}) > 1, answers
    return answers


def engine_status(client, engine_id):
    return client.get(f"/v1/engines/{engine_id}").json()


@pytest.fixture(scope="module")
def engine(client, project, lora_job):
    resp = client.post("/v1/engines", json={"name": "tiny-engine",
                                            "base_model": "tuneyard-tiny-lm",
                                            "task_type": "text-generation"})
    assert resp.status_code == 201, resp.text
    eng = resp.json()
    assert eng["status"] in ("Creating", "Active") and eng["deployment_counts"] == 0
    job, weights = lora_job
    deployments = {}
    for number in weights:
        resp = client.post(f"/v1/engines/{eng['id']}/deploy",
                           json={"project_id": project["id"], "training_id": job["id"],
                                 "checkpoint": number, "name": f"lora-{number}"})
        assert resp.status_code == 201, resp.text
        deployments[number] = resp.json()
    url = f"/v1/projects/{project['id']}/deployments"
    for dep in deployments.values():
        final = wait_for(lambda d=dep: (x := client.get(f"{url}/{d['id']}").json())["status"]
                         in ("Deployed", "Failed") and x, timeout=120, what="on the engine")
        assert final["status"] == "Deployed", final.get("error")
        assert final["engine_id"] == eng["id"] and final["active"]
    return eng, deployments


def complete(client, project, dep, prompt):
    resp = client.post(f"/v1/projects/{project['id']}/deployments/{dep['id']}/completions",
                       json={"prompt": prompt, "max_new_tokens": TOKENS})
    return resp


def test_each_adapter_answers_as_its_standalone_deployment(client, app, project, engine,
                                                          expected):
    eng, deployments = engine
    detail = engine_status(client, eng["id"])
    assert detail["status"] == "Active" and detail["deployment_counts"] == 3
    assert {d["name"] for d in detail["deployments"]} == {"lora-1", "lora-2", "lora-3"}
    assert [e["id"] for e in client.get("/v1/engines",
                                        params={"base_model": "tuneyard-tiny-lm"}).json()] \
        == [eng["id"]]
    assert client.get("/v1/engines", params={"task_type": "embedding"}).json() == []
    listed = client.get(f"/v1/projects/{project['id']}/deployments").json()
    assert {d["engine_id"] for d in listed if d["name"].startswith("lora-")} == {eng["id"]}

    for number, dep in deployments.items():
        for prompt in PROMPTS:
            resp = complete(client, project, dep, prompt)
            assert resp.status_code == 200, resp.text
            assert resp.json()["response"] == expected[number][prompt], (number, prompt)
        # the OpenAI-style route by name and by id
        for model in (dep["name"], dep["id"]):
            resp = client.post("/v1/completions", json={"model": model, "prompt": "ab",
                                                        "max_tokens": TOKENS, "temperature": 0})
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["text"] == expected[number]["ab"]
    # Streamed, through the OpenAI-style route: the deltas join to the same text.
    dep = deployments[2]
    with client.stream("POST", "/v1/completions",
                       json={"model": dep["name"], "prompt": "say k:", "max_tokens": TOKENS,
                             "temperature": 0, "stream": True}) as resp:
        assert resp.status_code == 200
        events = [json.loads(line[5:]) for line in resp.iter_lines()
                  if line.startswith("data:") and line.strip() != "data: [DONE]"]
    assert "".join(e["choices"][0]["text"] for e in events if e.get("choices")) \
        == expected[2]["say k:"]
    # One process holds the base for all three.
    health = httpx.get(app.state.engines.running[eng["id"]].handle.url + "/health").json()
    assert health["adapters"] == sorted(d["id"] for d in deployments.values())

    # A classification request to a text-generation deployment is a 400 naming why.
    dep = deployments[1]
    resp = client.post(f"/v1/projects/{project['id']}/deployments/{dep['id']}/classification",
                       json={"source_sentence": "x"})
    assert resp.status_code == 400 and "classification" in resp.json()["error"]


def test_concurrent_requests_across_adapters_are_batched(client, app, project, engine,
                                                        expected):
    eng, deployments = engine
    url = app.state.engines.running[eng["id"]].handle.url
    before = httpx.get(url + "/health").json()
    answers, errors = {}, []
    barrier = threading.Barrier(len(deployments) * len(PROMPTS))

    def ask(number, prompt):
        try:
            barrier.wait()
            answers[number, prompt] = complete(client, project, deployments[number], prompt)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n, p)) for n in deployments for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (number, prompt), resp in answers.items():
        assert resp.status_code == 200, resp.text
        assert resp.json()["response"] == expected[number][prompt], (number, prompt)
    after = httpx.get(url + "/health").json()
    # 9 requests took fewer generate calls than requests: they were batched.
    assert after["batched_requests"] - before["batched_requests"] == 9
    assert after["batches"] - before["batches"] < 9
    assert after["largest_batch"] > 1


def test_undeploy_one_while_the_others_answer(client, app, project, engine, expected):
    eng, deployments = engine
    stop, failures, served = threading.Event(), [], []

    def keep_asking(number):
        while not stop.is_set():
            resp = complete(client, project, deployments[number], "ab")
            if resp.status_code != 200 or resp.json()["response"] != expected[number]["ab"]:
                failures.append((number, resp.status_code, resp.text))
            served.append(number)

    threads = [threading.Thread(target=keep_asking, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(served) >= 2, timeout=30, what="requests under way")
        resp = client.post(f"/v1/engines/{eng['id']}/undeploy",
                           json={"deployment_name": "lora-3"})
        assert resp.status_code == 204, resp.text
        count = len(served)
        wait_for(lambda: len(served) >= count + 4, timeout=30, what="requests after undeploy")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    url = app.state.engines.running[eng["id"]].handle.url
    assert deployments[3]["id"] not in httpx.get(url + "/health").json()["adapters"]
    resp = complete(client, project, deployments[3], "ab")
    assert resp.status_code == 400 and "Cancelled" in resp.json()["error"]
    resp = client.post(f"/v1/engines/{eng['id']}/undeploy", json={"deployment_name": "nope"})
    assert resp.status_code == 400 and "nope" in resp.json()["error"]


def test_deactivate_and_reactivate(client, app, project, engine, expected):
    eng, deployments = engine
    assert client.post(f"/v1/engines/{eng['id']}/deactivate").status_code == 204
    assert engine_status(client, eng["id"])["status"] == "Inactive"
    assert eng["id"] not in app.state.engines.running
    resp = complete(client, project, deployments[1], "ab")
    assert resp.status_code == 503 and "reactivate" in resp.json()["error"]
    assert client.post(f"/v1/engines/{eng['id']}/deactivate").status_code == 400

    assert client.post(f"/v1/engines/{eng['id']}/reactivate").status_code == 204
    assert client.post(f"/v1/engines/{eng['id']}/reactivate").status_code == 400
    wait_for(lambda: engine_status(client, eng["id"])["status"] == "Active", timeout=120,
             what="reactivated")
    resp = complete(client, project, deployments[2], "say k:")
    assert resp.status_code == 200, resp.text
    assert resp.json()["response"] == expected[2]["say k:"]


def test_schedule_window_with_an_injected_clock(client, app, project, lora_job):
    from tuneyard.services.engines import schedule_state

    config = {"management_type": "schedule",
              "management_config": {"timezone": "America/Los_Angeles", "start_time": "09:00",
                                    "end_time": "17:00", "days": ["monday", "tuesday"]}}
    # Monday 2026-11-30 08:00 in Los Angeles is 16:00 UTC (PST, UTC-8).
    monday_8am = datetime(2026, 11, 30, 16, 0, tzinfo=UTC).timestamp()
    assert schedule_state(config, monday_8am) == (False, monday_8am + 3600)
    assert schedule_state(config, monday_8am + 3600)[0]
    assert not schedule_state(config, monday_8am + 9 * 3600)[0]  # 17:00: closed
    wednesday = monday_8am + 2 * 86400 + 3600
    assert schedule_state(config, wednesday) == (False, monday_8am + 7 * 86400 + 3600)
    overnight = {"management_type": "schedule",
                 "management_config": {"timezone": "UTC", "start_time": "22:00",
                                       "end_time": "02:00", "days": ["monday"]}}
    tuesday_1am = datetime(2026, 12, 1, 1, 0, tzinfo=UTC).timestamp()
    assert schedule_state(overnight, tuesday_1am)[0]

    manager = app.state.engines
    saved = manager.clock
    manager.clock = lambda: monday_8am
    try:
        resp = client.post("/v1/engines", json={"base_model": "tuneyard-tiny-lm",
                                                "resource_management_config": config})
        assert resp.status_code == 201, resp.text
        eng = resp.json()
        job, weights = lora_job
        dep = client.post(f"/v1/engines/{eng['id']}/deploy",
                          json={"project_id": project["id"], "training_id": job["id"],
                                "checkpoint": 1}).json()
        wait_for(lambda: engine_status(client, eng["id"])["status"] == "Inactive", timeout=30,
                 what="inactive outside the window")
        detail = engine_status(client, eng["id"])
        assert detail["next_active_at"] == int(monday_8am + 3600)
        resp = complete(client, project, dep, "ab")
        assert resp.status_code == 503
        assert "will be active at 2026-11-30T17:00:00Z" in resp.json()["error"]
        assert eng["id"] not in manager.running
    finally:
        manager.clock = saved
        client.delete(f"/v1/engines/{eng['id']}")
    assert client.get(f"/v1/engines/{eng['id']}").status_code == 404


def test_bad_engines_and_deploys_are_400s(client, app, project, create_job, lora_job, engine):
    job, _ = lora_job
    bad_configs = [
        ({"management_type": "schedule", "management_config": {
            "timezone": "Mars/Olympus", "start_time": "09:00", "end_time": "17:00"}},
         "timezone"),
        ({"management_type": "schedule", "management_config": {
            "timezone": "UTC", "start_time": "9am", "end_time": "17:00"}}, "start_time"),
        ({"management_type": "sometimes", "management_config": {}}, "management_type"),
        ({"management_type": "inactive_timeout",
          "management_config": {"inactive_duration": "soon"}}, "inactive_duration"),
    ]
    for config, field in bad_configs:
        resp = client.post("/v1/engines", json={"base_model": "tuneyard-tiny-lm",
                                                "resource_management_config": config})
        assert resp.status_code == 400 and field in resp.json()["error"], resp.text
    resp = client.post("/v1/engines", json={"base_model": "no-such-model"})
    assert resp.status_code == 400 and "base_model" in resp.json()["error"]
    resp = client.post("/v1/engines", json={"base_model": "tuneyard-tiny-lm",
                                            "task_type": "classification"})
    assert resp.status_code == 400 and "task_type" in resp.json()["error"]

    # An engine on another base: the checkpoint's base differs.
    other = client.post("/v1/engines", json={"base_model": "tuneyard-tiny-chat"}).json()
    body = {"project_id": project["id"], "training_id": job["id"], "checkpoint": 1}
    resp = client.post(f"/v1/engines/{other['id']}/deploy", json=body)
    assert resp.status_code == 400 and "tuneyard-tiny-lm" in resp.json()["error"], resp.text
    # A job that trains the full model (not LoRA).
    full = create_job(parameters={"use_lora": False})
    target = engine[0]["id"]
    resp = client.post(f"/v1/engines/{target}/deploy", json={**body, "training_id": full["id"]})
    assert resp.status_code == 400 and "LoRA" in resp.json()["error"]
    client.post(f"/v1/projects/{project['id']}/training-jobs/{full['id']}/cancel")
    resp = client.post(f"/v1/engines/{target}/deploy", json={**body, "checkpoint": 99})
    assert resp.status_code == 400 and "checkpoint" in resp.json()["error"]
    resp = client.post(f"/v1/engines/{target}/deploy", json={**body, "project_id": "ms-nope"})
    assert resp.status_code == 404

    # Another user's engine is a 404; their deploy into our project is a 404 too.
    from tuneyard.db import session_scope
    from tuneyard.services.keys import create_key

    with session_scope(app.state.engine) as session:
        key, _ = create_key(session=session, name="other")
    stranger = TestClient(app, headers={"X-API-Key": key})
    assert stranger.get(f"/v1/engines/{other['id']}").status_code == 404
    assert stranger.delete(f"/v1/engines/{other['id']}").status_code == 404
    theirs = stranger.post("/v1/engines", json={"base_model": "tuneyard-tiny-lm"}).json()
    resp = stranger.post(f"/v1/engines/{theirs['id']}/deploy", json=body)
    assert resp.status_code == 404
    assert other["id"] not in {e["id"] for e in stranger.get("/v1/engines").json()}
    for eng_id, who in ((other["id"], client), (theirs["id"], stranger)):
        assert who.delete(f"/v1/engines/{eng_id}").status_code == 204


def test_the_client_drives_engines(client, project, engine, lora_job, expected):
    from tests.conftest import ADMIN_KEY
    from tuneyard.client import TuneyardClient

    eng, _ = engine
    job, _ = lora_job
    def through_app(request: httpx.Request) -> httpx.Response:
        answer = client.request(request.method, request.url.raw_path.decode(),
                                content=request.content, headers=dict(request.headers))
        return httpx.Response(answer.status_code, content=answer.content,
                              headers={"content-type": answer.headers.get("content-type", "")})

    api = TuneyardClient("http://testserver", ADMIN_KEY,
                         transport=httpx.MockTransport(through_app))
    assert eng["id"] in {e.id for e in api.engines.list(base_model="tuneyard-tiny-lm")}
    dep = api.engines.deploy(eng["id"], project_id=project["id"], training_id=job["id"],
                             checkpoint=2, name="via-client")
    assert dep.engine_id == eng["id"]
    done = api.deployments.wait(project["id"], dep.id, poll_s=0.2, timeout_s=60)
    assert done.status == "Deployed", done.error
    answer = api.inference.completions("via-client", "ab", max_tokens=TOKENS, temperature=0)
    assert answer.text == expected[2]["ab"]
    assert "via-client" in {d.name for d in api.engines.get(eng["id"]).deployments}
    api.engines.undeploy(eng["id"], "via-client")
    assert api.deployments.get(project["id"], dep.id).status == "Cancelled"
