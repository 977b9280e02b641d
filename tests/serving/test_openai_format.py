"""Wire shapes: the real `openai` package parses what openai_format builds
(served through an httpx mock transport), and the Emissary/v2 shapes match
the contracts."""

from __future__ import annotations

import json

import httpx
import pytest

from tuneyard.serving import openai_format as fmt

RESULT = {"text": "Paris, of course.", "prompt_tokens": 7, "completion_tokens": 5,
          "finish_reason": "stop"}
EVENTS = [{"delta": "Par"}, {"delta": "is, "}, {"delta": ""}, {"delta": "of course."},
          {"done": True, **RESULT}]


def openai_client(handler):
    import openai

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(base_url="http://tuneyard.test/v1", api_key="ty_key", http_client=http)


def json_response(body) -> httpx.Response:
    return httpx.Response(200, json=body)


def sse_response(chunks) -> httpx.Response:
    return httpx.Response(200, content="".join(chunks).encode(),
                          headers={"content-type": "text/event-stream"})


def test_chat_completion_parses_in_the_openai_client():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["authorization"]
        seen["body"] = json.loads(request.content)
        return json_response(fmt.chat_completion(RESULT, model=seen["body"]["model"]))

    client = openai_client(handler)
    reply = client.chat.completions.create(model="dp-1", messages=[{"role": "user",
                                                                    "content": "capital?"}])
    assert seen["auth"] == "Bearer ty_key"
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == "dp-1"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == RESULT["text"]
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens,
            reply.usage.total_tokens) == (7, 5, 12)


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream_parses_as_chunks_and_ends_with_done(include_usage):
    chunks = list(fmt.chat_completion_stream(EVENTS, model="dp-1", include_usage=include_usage))
    assert chunks[-1] == "data: [DONE]\n\n"
    client = openai_client(lambda request: sse_response(chunks))
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    parts = list(client.chat.completions.create(
        model="dp-1", messages=[{"role": "user", "content": "x"}], stream=True, **kwargs))
    assert all(p.object == "chat.completion.chunk" and p.id == parts[0].id for p in parts)
    assert parts[0].choices[0].delta.role == "assistant"
    with_choices = [p for p in parts if p.choices]
    text = "".join(p.choices[0].delta.content or "" for p in with_choices)
    assert text == RESULT["text"]
    assert [p.choices[0].finish_reason for p in with_choices][-1] == "stop"
    assert all(p.choices[0].finish_reason is None for p in with_choices[:-1])
    if include_usage:
        assert parts[-1].choices == [] and parts[-1].usage.total_tokens == 12
    else:
        assert all(p.usage is None for p in parts)


def test_a_stream_that_fails_or_ends_early_says_so():
    failed = list(fmt.chat_completion_stream([{"delta": "a"}, {"error": "boom", "code": "x"}],
                                             model="m"))
    assert json.loads(failed[-2][6:])["error"]["message"] == "boom"
    assert failed[-1] == fmt.DONE
    early = list(fmt.chat_completion_stream([{"delta": "a"}], model="m"))
    assert "ended the stream early" in early[-2] and early[-1] == fmt.DONE
    stream = fmt.ChatCompletionStream(model="m")
    stream.feed({"done": True, **RESULT})
    assert stream.finished and stream.feed({"delta": "late"}) == []


def test_text_completion_plain_and_streamed():
    client = openai_client(lambda r: json_response(fmt.text_completion(RESULT, model="dp-1")))
    reply = client.completions.create(model="dp-1", prompt="The capital of France is")
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == RESULT["text"]
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 5

    stream = fmt.TextCompletionStream(model="dp-1")
    chunks = [*stream.start(), *(c for e in EVENTS for c in stream.feed(e))]
    client = openai_client(lambda r: sse_response(chunks))
    parts = list(client.completions.create(model="dp-1", prompt="x", stream=True))
    assert "".join(p.choices[0].text for p in parts) == RESULT["text"]
    assert parts[-1].choices[0].finish_reason == "stop"


def test_length_and_cancelled_finish_reasons_map_to_openai_ones():
    assert fmt.chat_completion({**RESULT, "finish_reason": "length"},
                               model="m")["choices"][0]["finish_reason"] == "length"
    assert fmt.text_completion({**RESULT, "finish_reason": "cancelled"},
                               model="m")["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("explicit", [None, "float", "base64"])
def test_embeddings_parse_in_both_encodings(explicit):
    vectors = [[0.25, -1.5, 3.0], [1e-3, 0.0, -2.75]]

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return json_response(fmt.embeddings_response(
            vectors, model=body["model"], prompt_tokens=4,
            encoding_format=body.get("encoding_format")))

    client = openai_client(handler)
    kwargs = {"encoding_format": explicit} if explicit else {}
    reply = client.embeddings.create(model="dp-e", input=["a", "b"], **kwargs)
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.data[0].object == "embedding"
    assert reply.usage.prompt_tokens == 4
    if explicit == "base64":  # asked for explicitly, the client leaves it encoded
        assert isinstance(reply.data[0].embedding, str)
    else:
        assert [d.embedding for d in reply.data] == [pytest.approx(v) for v in vectors]


def test_v2_classification_shape():
    results = [{"label": "cat", "scores": {"cat": 0.7, "dog": 0.3}, "logits": [1.2, 0.35]},
               {"label": "dog", "scores": {"cat": 0.1, "dog": 0.9}, "logits": [-1.0, 1.2]}]
    body = fmt.classification_response(results, model="dp-c", prompt_tokens=6)
    assert body["model"] == "dp-c" and body["id"].startswith("classify-")
    assert body["data"] == [{"index": 0, "logits": {"cat": 1.2, "dog": 0.35}},
                            {"index": 1, "logits": {"cat": -1.0, "dog": 1.2}}]
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 0, "total_tokens": 6}
    probs = fmt.classification_response(results, model="dp-c", data_format="probs")
    assert probs["data"][1] == {"index": 1, "probs": {"cat": 0.1, "dog": 0.9}}
    value = fmt.classification_response([{"value": 2.5}], model="dp-r")
    assert value["data"] == [{"index": 0, "value": 2.5}]
    with pytest.raises(ValueError, match="data_format"):
        fmt.classification_response(results, model="m", data_format="odds")


def test_emissary_per_deployment_shapes():
    body = fmt.emissary_text(RESULT)
    assert body["response"] == RESULT["text"] and body["id"].startswith("completion-")
    assert fmt.emissary_text(RESULT, prefix="chat-completion")["id"].startswith("chat-completion-")

    single = fmt.emissary_classification({"label": "cat", "scores": {"cat": 0.7, "dog": 0.3},
                                          "logits": [1.0, 0.2]})
    assert single["response"] == "cat" and single["scores"] == {"cat": 0.7, "dog": 0.3}
    multi = fmt.emissary_classification({"label": "a", "labels": ["a", "b"],
                                         "scores": {"a": 0.9, "b": 0.6}, "logits": [2, 0.4]})
    assert multi["labels"] == ["a", "b"]
    regression = fmt.emissary_classification({"value": 3.25})
    assert regression["response"] == "3.25" and regression["value"] == 3.25

    plain = fmt.emissary_embeddings([1.0, 0.0], [0.0, 1.0])["response"]
    assert plain == {"embeddings": {"text1": [1.0, 0.0], "text2": [0.0, 1.0]}}
    scored = fmt.emissary_embeddings([3.0, 4.0], [0.0, 0.0], cosine=True, manhattan=True,
                                     euclidean=True)["response"]
    assert (scored["cosine_score"], scored["manhattan_distance"],
            scored["euclidean_distance"]) == (0.0, 7.0, 5.0)


def test_emissary_chat_stream_events():
    stream = fmt.EmissaryChatStream(id="chat-completion-1")
    chunks = [*stream.start(), *(c for e in EVENTS for c in stream.feed(e))]
    assert chunks[-1] == fmt.DONE
    events = [json.loads(c[6:]) for c in chunks[:-1]]
    deltas = [e["delta"] for e in events if "delta" in e]
    assert deltas == ["Par", "is, ", "of course."]
    assert events[-1]["response"] == "".join(deltas) == RESULT["text"]
    assert all(e["id"] == "chat-completion-1" for e in events)
