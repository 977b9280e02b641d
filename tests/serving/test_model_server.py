"""The model-server process end to end: started with `start_model_server`,
driven over HTTP with the clients, stopped with its whole process group."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serving.conftest import LABELS, TEXTS

from tuneyard.serving.errors import (
    ModelServerError,
    ModelServerRequestError,
    ModelServerUnavailable,
)
from tuneyard.serving.process import (
    AsyncModelServerClient,
    ModelServerClient,
    ModelServerHandle,
    is_running,
    start_model_server,
    stop_model_server,
    wait_ready,
)

pytestmark = pytest.mark.slow

PROMPTS = ["abc", "The cat", "zzz", "1234", "hello world", "Q: why?", "xyz", "!!"]
CHAT = [{"role": "user", "content": "hi there"}]


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def servers(tmp_path_factory, chat_lm_dir, classifier_dir, minilm_dir):
    """Three model servers (LM, classifier, embedder), started together."""
    logs = tmp_path_factory.mktemp("logs")
    specs = {"lm": (chat_lm_dir, "text-generation"),
             "classifier": (classifier_dir, "classification"),
             "embedder": (minilm_dir, "embedding")}
    handles = {name: start_model_server(model_dir=str(d), task_type=task,
                                        log_path=logs / f"{name}.log")
               for name, (d, task) in specs.items()}
    try:
        health = {name: wait_ready(h, timeout=120) for name, h in handles.items()}
        yield handles, health
    finally:
        for handle in handles.values():
            stop_model_server(handle)


@pytest.fixture(scope="module")
def expected(chat_lm_dir):
    """Greedy answers computed in this process on the same weights."""
    from tuneyard.serving.loaded import load_for_serving

    model = load_for_serving(str(chat_lm_dir), task_type="text-generation", device="cpu")
    try:
        yield {
            "complete": {p: model.complete(p, max_new_tokens=24).to_dict() for p in PROMPTS},
            "chat": model.chat(CHAT, max_new_tokens=48).to_dict(),
        }
    finally:
        model.close()


def test_health_reports_the_loaded_model(servers, chat_lm_dir):
    handles, health = servers
    lm = health["lm"]
    assert lm["status"] == "ok" and lm["task"] == "text-generation"
    assert lm["model_dir"] == str(chat_lm_dir) and lm["device"] == "cpu"
    assert lm["pid"] == handles["lm"].pid
    assert time.time() - 300 < lm["loaded_at"] <= time.time()
    assert health["classifier"]["labels"] == LABELS
    assert health["embedder"]["task"] == "embedding"
    assert handles["lm"].url == f"http://127.0.0.1:{handles['lm'].port}"
    assert len({h.port for h in handles.values()}) == 3


def test_complete_and_chat_routes(servers, expected):
    with ModelServerClient(servers[0]["lm"].url) as client:
        got = client.complete("The cat", max_new_tokens=24)
        assert got == expected["complete"]["The cat"]
        assert client.chat(CHAT, max_new_tokens=48) == expected["chat"]
        assert client.complete("abc", max_new_tokens=3)["completion_tokens"] == 3
        assert client.health()["last_request_at"] is not None


def test_eight_concurrent_completions_each_get_their_own_answer(servers, expected):
    barrier = threading.Barrier(len(PROMPTS))
    url = servers[0]["lm"].url

    def ask(prompt):
        with ModelServerClient(url) as client:
            barrier.wait()
            return client.complete(prompt, max_new_tokens=24)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        answers = dict(zip(PROMPTS, pool.map(ask, PROMPTS), strict=True))
    assert answers == expected["complete"]
    assert len({a["text"] for a in answers.values()}) == len(PROMPTS)


def test_chat_streams_sse_deltas_then_the_whole_response(servers, expected):
    url = servers[0]["lm"].url
    with httpx.stream("POST", f"{url}/chat", timeout=60,
                      json={"messages": CHAT, "max_new_tokens": 48, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in raw)
    with ModelServerClient(url) as client:
        events = list(client.stream_chat(CHAT, max_new_tokens=48))
    deltas = [e["delta"] for e in events[:-1]]
    assert len(deltas) > 3 and all(deltas)
    final = events[-1]
    assert final.pop("done") is True
    assert final == expected["chat"]
    assert "".join(deltas) == final["text"]
    assert len(raw) == len(events)

    async def stream_async():
        async with AsyncModelServerClient(url) as client:
            return [e async for e in client.stream_complete("abc", max_new_tokens=24)]

    events = asyncio.run(stream_async())
    assert "".join(e.get("delta", "") for e in events) == expected["complete"]["abc"]["text"]
    assert events[-1]["completion_tokens"] == 24


def test_classify_and_embed_routes(servers, minilm_dir):
    from tuneyard.serving.loaded import load_for_serving

    handles, _ = servers
    with ModelServerClient(handles["classifier"].url) as client:
        body = client.classify(TEXTS)
    assert body["labels"] == LABELS and body["prompt_tokens"] > len(TEXTS)
    assert [set(r) for r in body["results"]] == [{"label", "scores", "logits"}] * len(TEXTS)
    with ModelServerClient(handles["embedder"].url) as client:
        single = client.embed("a cat sat on the mat")
        many = client.embed(TEXTS)
    assert len(single["embeddings"]) == 1 and len(many["embeddings"]) == len(TEXTS)
    assert single["embeddings"][0] == pytest.approx(many["embeddings"][-1], abs=1e-5)
    local = load_for_serving(str(minilm_dir), task_type="embedding", device="cpu")
    try:
        assert many["embeddings"][0] == pytest.approx(local.embed(TEXTS[:1])[0], abs=1e-5)
    finally:
        local.close()


def test_errors_are_400_with_a_reason(servers):
    handles, _ = servers
    with ModelServerClient(handles["lm"].url) as client:
        with pytest.raises(ModelServerRequestError) as info:
            client.complete("x", temperature=-1)
        assert (info.value.status_code, info.value.code, info.value.field) == (
            400, "invalid_sampling", "temperature")
        with pytest.raises(ModelServerRequestError, match="top_p must be in") as info:
            list(client.stream_chat(CHAT, top_p=2))
        assert info.value.status_code == 400
        with pytest.raises(ModelServerRequestError, match="context is 512 tokens") as info:
            list(client.stream_complete("x" * 600))
        assert info.value.status_code == 400
        with pytest.raises(ModelServerRequestError, match="classification needs") as info:
            client.classify(["x"])
        assert (info.value.status_code, info.value.code) == (400, "unsupported_task")
    with ModelServerClient(handles["embedder"].url) as client:
        with pytest.raises(ModelServerRequestError, match="chat completions needs") as info:
            client.chat(CHAT)
        assert info.value.status_code == 400
    response = httpx.post(f"{handles['lm'].url}/complete", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_a_model_that_cannot_load_fails_fast_with_its_log(tmp_path):
    handle = start_model_server(model_dir=str(tmp_path / "missing"), task_type="text-generation",
                                log_path=tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(ModelServerError, match=r"(?s)exited \(status 3\).*does not exist"):
        wait_ready(handle, timeout=60)
    assert time.monotonic() - started < 30
    assert not is_running(handle)


def test_stop_ends_the_process_group_and_tolerates_repeats(tmp_path, chat_lm_dir):
    handle = start_model_server(model_dir=str(chat_lm_dir), task_type="text-generation",
                                log_path=tmp_path / "lm.log")
    wait_ready(handle, timeout=120)
    # Stopped mid-stream, it still goes (a stream gets a few seconds to finish).
    events = ModelServerClient(handle.url).stream_complete("abc", max_new_tokens=400)
    assert "delta" in next(events)
    started = time.monotonic()
    stop_model_server(handle)
    assert time.monotonic() - started < 9  # before the SIGKILL fallback
    assert _group_gone(handle.pid) and not is_running(handle)
    # uvicorn re-raises the SIGTERM it handled once it has shut down: -15, not -9.
    assert handle.process.returncode in (0, -15)
    events.close()
    stop_model_server(handle)  # already stopped: a no-op
    # A handle rebuilt from stored fields (no Popen) stops a server too.
    handle = start_model_server(model_dir=str(chat_lm_dir), task_type="text-generation",
                                log_path=tmp_path / "lm2.log")
    wait_ready(handle, timeout=120)
    stored = ModelServerHandle(pid=handle.pid, port=handle.port, url=handle.url)
    stop_model_server(stored)
    assert _group_gone(handle.pid)
    handle.process.wait(timeout=5)
    with pytest.raises(ModelServerUnavailable):
        ModelServerClient(handle.url, timeout=2).health()
    assert "serving on http://127.0.0.1" in (tmp_path / "lm.log").read_text()
