"""Text generation through `load_for_serving`: equal to direct `generate` on the
same weights, token limits, stop strings, streaming, LoRA, concurrency."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tuneyard.serving.errors import InvalidRequest, ModelLoadError, SamplingError, UnsupportedTask
from tuneyard.serving.loaded import load_for_serving

PROMPTS = ["abc", "The cat", "zzz", "1234", "hello world", "Q: why?", "xyz", "!!", "tune", "yard"]
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@pytest.fixture(scope="module")
def lm(chat_lm_dir):
    model = load_for_serving(str(chat_lm_dir), task_type="text-generation", device="cpu")
    yield model
    model.close()


@pytest.fixture(scope="module")
def reference(chat_lm_dir):
    """The same weights loaded plainly, and a greedy `generate` returning new text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(chat_lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(chat_lm_dir)

    def generate(text: str, max_new_tokens: int, *, chat: bool = False, net=None, **kwargs):
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)
        with torch.no_grad():
            out = (net or model).generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                          **kwargs)
        new = out[0, enc["input_ids"].shape[1]:]
        return tokenizer.decode(new, skip_special_tokens=True), len(new), enc["input_ids"].shape[1]

    generate.tokenizer = tokenizer
    generate.model = model
    return generate


def test_greedy_complete_equals_direct_generate(lm, reference):
    for prompt in PROMPTS[:4]:
        got = lm.complete(prompt, max_new_tokens=24)
        text, n_new, n_prompt = reference(prompt, 24)
        assert got.text == text and text  # no prompt echo, non-trivial
        assert not got.text.startswith(prompt)
        assert (got.prompt_tokens, got.completion_tokens) == (n_prompt, n_new)
    # Different prompts give different answers (or the concurrency test proves nothing).
    assert len({lm.complete(p, max_new_tokens=12).text for p in PROMPTS}) == len(PROMPTS)


def test_max_new_tokens_is_respected(lm):
    for n in (1, 5, 17):
        got = lm.complete("The cat", max_new_tokens=n)
        assert got.completion_tokens == n
        assert got.finish_reason == "length"
        assert len(got.text) <= n  # byte-level: at most one character per token


def test_chat_uses_the_template_and_matches_direct_generate(lm, reference):
    rendered = reference.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True,
                                                       tokenize=False)
    assert rendered.endswith("<|assistant|>")
    text, n_new, n_prompt = reference(rendered, 40, chat=True)
    got = lm.chat(MESSAGES, max_new_tokens=40)
    assert got.text == text
    assert (got.prompt_tokens, got.completion_tokens) == (n_prompt, n_new)
    assert n_new == 40 and got.finish_reason == "length"

    # This one ends on a stop token (eos) well before its budget: "stop".
    short = [{"role": "user", "content": "hi"}]
    text, n_new, _ = reference(reference.tokenizer.apply_chat_template(
        short, add_generation_prompt=True, tokenize=False), 40, chat=True)
    got = lm.chat(short, max_new_tokens=40)
    assert got.text == text and got.completion_tokens == n_new < 40
    assert got.finish_reason == "stop"


def test_stream_deltas_concatenate_to_the_greedy_text(lm):
    for messages in (MESSAGES, [{"role": "user", "content": p} for p in PROMPTS[:3]]):
        plain = lm.chat(messages, max_new_tokens=60)
        stream = lm.stream_chat(messages, max_new_tokens=60)
        deltas = list(stream)
        assert "".join(deltas) == plain.text
        assert stream.result == plain
    # Long byte soup: many deltas, split wherever UTF-8 allows.
    plain = lm.complete("hello world", max_new_tokens=80)
    stream = lm.stream_complete("hello world", max_new_tokens=80)
    deltas = list(stream)
    assert len(deltas) > 10 and all(deltas)
    assert "".join(deltas) == plain.text
    assert stream.result.completion_tokens == 80


def test_stop_strings_cut_the_text_and_end_generation(lm):
    full = lm.complete("hello world", max_new_tokens=60).text
    # A stop string from the middle of the greedy continuation.
    stop = next(full[i:i + 2] for i in range(10, len(full)) if full.find(full[i:i + 2]) == i)
    cut = lm.complete("hello world", max_new_tokens=60, stop=[stop])
    assert cut.text == full[:full.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < 60
    stream = lm.stream_complete("hello world", max_new_tokens=60, stop=stop)
    assert "".join(stream) == cut.text
    assert stream.result.finish_reason == "stop"


def test_closing_a_stream_cancels_its_generation(lm):
    stream = lm.stream_complete("The cat", max_new_tokens=400)
    assert next(stream)
    stream.close()
    lm.complete("abc", max_new_tokens=1)  # queued behind the stream: it has ended
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.completion_tokens < 400


def test_concurrent_calls_each_get_their_own_answer(lm):
    expected = {p: lm.complete(p, max_new_tokens=16).text for p in PROMPTS}
    barrier = threading.Barrier(len(PROMPTS))

    def ask(prompt):
        barrier.wait()
        if prompt in PROMPTS[::3]:
            return "".join(lm.stream_complete(prompt, max_new_tokens=16))
        return lm.complete(prompt, max_new_tokens=16).text

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = dict(zip(PROMPTS, pool.map(ask, PROMPTS), strict=True))
    assert got == expected


def test_bad_requests_raise_before_running(lm, chat_lm_dir):
    with pytest.raises(SamplingError, match="temperature"):
        lm.complete("x", temperature=-1)
    with pytest.raises(SamplingError, match="max_new_tokens must be at most 2048"):
        lm.chat(MESSAGES, max_new_tokens=5000)
    with pytest.raises(InvalidRequest, match="role"):
        lm.chat([{"role": "wizard", "content": "x"}])
    with pytest.raises(InvalidRequest, match="context is 512 tokens"):
        lm.complete("x" * 600, max_new_tokens=5)
    with pytest.raises(UnsupportedTask, match="classification needs a classification"):
        lm.classify(["x"])
    with pytest.raises(UnsupportedTask, match="embeddings needs an? embedding"):
        lm.embed(["x"])
    small = load_for_serving(str(chat_lm_dir), task_type="completion", device="cpu",
                             max_new_tokens_limit=8)
    try:
        assert small.task_type == "text-generation"
        with pytest.raises(SamplingError, match="at most 8"):
            small.complete("x", max_new_tokens=9)
    finally:
        small.close()


def test_sampling_and_ngram_options_reach_generate(lm, reference):
    got = lm.complete("abc", max_new_tokens=10, temperature=1.5, top_p=0.9, top_k=20)
    assert got.completion_tokens <= 10
    # Sampling really samples: 8 draws are not all the greedy text.
    greedy = lm.complete("abc", max_new_tokens=30).text
    draws = {lm.complete("abc", max_new_tokens=30, temperature=2.0).text for _ in range(8)}
    assert draws - {greedy}
    plain, _, _ = reference("Q: why?", 40)
    blocked, _, _ = reference("Q: why?", 40, no_repeat_ngram_size=1)
    assert plain != blocked  # the option matters for this prompt...
    assert lm.complete("Q: why?", max_new_tokens=40, no_repeat_ngram_size=1).text == blocked


def test_lora_adapter_loads_as_merged_base_plus_adapter(lora, reference, chat_lm_dir, tmp_path):
    adapter_dir, peft_model = lora
    served = load_for_serving(str(adapter_dir), task_type="text-generation", device="cpu")
    try:
        assert served.source == "adapter"
        for prompt in PROMPTS[:3]:
            adapted, _, _ = reference(prompt, 20, net=peft_model)
            assert served.complete(prompt, max_new_tokens=20).text == adapted
            assert adapted != reference(prompt, 20)[0]  # the adapter does change outputs
    finally:
        served.close()

    # An adapter whose recorded base is elsewhere loads on the base it is given.
    moved = tmp_path / "moved"
    shutil.copytree(adapter_dir, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/nonexistent/base"
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="base model /nonexistent/base does not exist"):
        load_for_serving(str(moved), task_type="text-generation", device="cpu")
    served = load_for_serving(str(moved), task_type="text-generation", device="cpu",
                              base_model_path=str(chat_lm_dir))
    try:
        assert served.complete("abc", max_new_tokens=20).text == reference(
            "abc", 20, net=peft_model)[0]
    finally:
        served.close()


def test_load_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_for_serving(str(tmp_path / "nope"), task_type="text-generation")
    with pytest.raises(ModelLoadError, match="holds no model"):
        load_for_serving(str(tmp_path), task_type="text-generation")
    with pytest.raises(InvalidRequest, match="unknown task type"):
        load_for_serving(str(tmp_path), task_type="translation")
