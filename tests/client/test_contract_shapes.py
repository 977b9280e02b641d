"""Requests and responses for routes the server does not serve yet
(deployments, inference, test functions), checked against the contract's
shapes through an `httpx.MockTransport`: the one thing mocked is the server
that does not exist yet. Once it does, the live tests cover these too."""

from __future__ import annotations

import json

import httpx
import pytest

from tuneyard.client import TuneyardAPIError, TuneyardClient

SENT: list[httpx.Request] = []


def sse(*events: dict | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


def chunk(text: str) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta":
                                                            {"content": text}}]}


def fake_server(request: httpx.Request) -> httpx.Response:
    """Answers like the contract says, echoing enough of the request to check it."""
    SENT.append(request)
    path, method = request.url.path, request.method
    body = json.loads(request.content) if request.content else {}
    dp = {"id": "dp-1", "name": "d1", "status": "Deployed", "created_at": 1}
    if request.headers.get("x-api-key") != "key":
        return httpx.Response(401, json={"status": 401, "error": "invalid API key"})
    if path == "/v1/projects/ms-1/deployments" and method == "POST":
        return httpx.Response(201, json={**dp, "status": "Pending"})
    if path == "/v1/projects/ms-1/deployments":
        return httpx.Response(200, json=[dp])
    if path == "/v1/projects/ms-1/deployments/dp-1" and method == "GET":
        return httpx.Response(200, json={**dp, "training_id": "tr-1", "checkpoint": 2,
                                         "base_model": "m", "updated_at": 2})
    if path.startswith("/v1/projects/ms-1/deployments/dp-1") and method in ("POST", "DELETE") \
            and path.rsplit("/", 1)[-1] in ("dp-1", "cancel", "reactivate"):
        return httpx.Response(204)
    if path.endswith("/dp-1/completions"):
        return httpx.Response(200, json={"id": "c-1", "response": "Paris"})
    if path.endswith("/dp-1/chat/completions"):
        if "text/event-stream" in request.headers.get("accept", ""):
            return httpx.Response(200, content=sse({"delta": "Hel"}, {"delta": "lo"},
                                                   {"response": "Hello"}, "[DONE]"),
                                  headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"id": "c-2", "response": "Hi!"})
    if path.endswith("/dp-1/classification"):
        return httpx.Response(200, json={"id": "k-1", "response": "cat"})
    if path.endswith("/dp-1/embeddings"):
        return httpx.Response(200, json={"id": "e-1", "response": {
            "embeddings": {"text1": [1.0, 0.0], "text2": [0.0, 1.0]}, "cosine_score": 0.0}})
    if path == "/v1/completions":
        return httpx.Response(200, json={"id": "x", "object": "text_completion",
                                         "choices": [{"index": 0, "text": " 4"}]})
    if path == "/v1/chat/completions" and body.get("stream"):
        return httpx.Response(200, content=sse(chunk("It "), chunk("works"), "[DONE]"),
                              headers={"content-type": "text/event-stream"})
    if path == "/v1/chat/completions":
        if body["model"] == "missing":
            return httpx.Response(404, json={"status": 404, "error": "no deployment 'missing'",
                                             "code": "object_not_found"})
        return httpx.Response(200, json={"id": "y", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hey"}}]})
    if path == "/v1/embeddings":
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return httpx.Response(200, json={"data": [
            {"index": i, "embedding": [float(i), 1.0]} for i in reversed(range(len(inputs)))]})
    if path == "/v1/classification":
        key = body.get("data_format") or "logits"
        return httpx.Response(200, json={"id": "z", "model": "dp-1", "data": [
            {"index": 0, key: {"cat": 0.2, "dog": 0.7, "eel": 0.1}}]})
    if path == "/v1/testing-functions":
        return httpx.Response(200, json=[{"name": "exact_match", "content": "def f(): ...",
                                          "dependencies": []}])
    return httpx.Response(404, json={"status": 404, "error": "Not Found"})


@pytest.fixture
def api():
    SENT.clear()
    with TuneyardClient("http://tuneyard.test", "key",
                        transport=httpx.MockTransport(fake_server)) as client:
        yield client


def last_body() -> dict:
    return json.loads(SENT[-1].content)


def test_deployment_create_sends_the_contract_body(api):
    created = api.deployments.create("ms-1", training_job_id="tr-1", checkpoint=2,
                                     name="d1", inactive_timeout=60)
    assert created.status == "Pending"
    assert SENT[-1].url.path == "/v1/projects/ms-1/deployments"
    assert last_body() == {"training_job_id": "tr-1", "checkpoint": 2, "name": "d1",
                           "inactive_timeout": 60}


def test_deployment_get_list_and_actions(api):
    assert [d.id for d in api.deployments.list("ms-1")] == ["dp-1"]
    detail = api.deployments.get("ms-1", "dp-1")
    assert (detail.training_id, detail.checkpoint, detail.settled) == ("tr-1", 2, True)
    assert api.deployments.wait("ms-1", "dp-1").status == "Deployed"
    api.deployments.cancel("ms-1", "dp-1")
    api.deployments.reactivate("ms-1", "dp-1")
    api.deployments.delete("ms-1", "dp-1")
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in SENT[-3:]] == [
        ("POST", "cancel"), ("POST", "reactivate"), ("DELETE", "dp-1")]


def test_per_deployment_inference(api):
    assert api.deployments.complete("ms-1", "dp-1", "Capital of France?",
                                    max_new_tokens=5) == "Paris"
    assert last_body() == {"prompt": "Capital of France?", "max_new_tokens": 5}
    assert api.deployments.chat("ms-1", "dp-1", [{"role": "user", "content": "hi"}]) == "Hi!"
    assert api.deployments.classify("ms-1", "dp-1", "meow")["response"] == "cat"
    assert last_body() == {"source_sentence": "meow"}
    embedded = api.deployments.embed("ms-1", "dp-1", "a", "b")
    assert embedded["embeddings"]["text2"] == [0.0, 1.0]
    assert last_body()["cosine"] is True


def test_per_deployment_chat_stream(api):
    pieces = list(api.deployments.chat_stream("ms-1", "dp-1",
                                              [{"role": "user", "content": "hi"}]))
    assert pieces == ["Hel", "lo"]  # the final whole response is not repeated
    assert last_body()["streaming"] is True
    assert "text/event-stream" in SENT[-1].headers["accept"]


def test_openai_style_routes(api):
    assert api.inference.completions("dp-1", "2 plus 2 is", max_tokens=3).text == " 4"
    assert last_body() == {"model": "dp-1", "prompt": "2 plus 2 is", "max_completion_tokens": 3}
    reply = api.inference.chat_completions("dp-1", [{"role": "user", "content": "yo"}])
    assert reply.text == "Hey"
    vectors = api.inference.embeddings("dp-1", ["a", "b"]).vectors
    assert vectors == [[0.0, 1.0], [1.0, 1.0]]  # ordered by index
    result = api.inference.classification("dp-1", "woof", data_format="probs")
    assert result.label == "dog" and result.scores["cat"] == 0.2


def test_chat_stream_yields_text_deltas(api):
    stream = api.inference.chat_stream("dp-1", [{"role": "user", "content": "hi"}],
                                       max_tokens=8)
    assert SENT == []  # a generator: nothing is sent before iteration
    assert list(stream) == ["It ", "works"]
    assert last_body() == {"model": "dp-1", "messages": [{"role": "user", "content": "hi"}],
                           "stream": True, "max_tokens": 8}


def test_inference_error_carries_the_message(api):
    with pytest.raises(TuneyardAPIError, match="no deployment 'missing'") as caught:
        api.inference.chat_completions("missing", [{"role": "user", "content": "x"}])
    assert caught.value.code == "object_not_found"


def test_test_functions(api):
    assert [f.name for f in api.test_functions.list()] == ["exact_match"]
    assert api.test_functions.get("exact_match").content.startswith("def")
    with pytest.raises(TuneyardAPIError, match="known: exact_match"):
        api.test_functions.get("nope")


def test_key_goes_to_api_paths_but_never_to_absolute_urls():
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"abc", headers={"content-length": "3"})

    with TuneyardClient("http://tuneyard.test", "secret-key",
                        transport=httpx.MockTransport(record)) as client:
        client.http.request("GET", "/v1/projects")
        with client.http.stream("GET", "https://bucket.s3.test/obj?sig=1") as response:
            response.read()
    assert seen[0].headers["x-api-key"] == "secret-key"
    assert "x-api-key" not in seen[1].headers
