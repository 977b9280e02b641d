"""The builtin tiny LM: built offline, deterministic, loadable, written once."""

import hashlib

import pytest

from tuneyard.models.builtin import build_tiny_lm


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_lm_loads_with_auto_classes_and_byte_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_lm(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.num_hidden_layers == 2
    assert model.config.max_position_embeddings == 512
    assert len(tok) == 256 + 3  # one token per byte plus bos/eos/pad
    ids = tok("héllo")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert len(ids) == 1 + len("héllo".encode())  # byte level: é is two tokens
    assert tok.decode(ids, skip_special_tokens=True) == "héllo"
    assert tok.pad_token_id == model.config.pad_token_id


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = build_tiny_lm(tmp_path / "a", seed=3)
    b = build_tiny_lm(tmp_path / "b", seed=3)
    c = build_tiny_lm(tmp_path / "c", seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_build_is_idempotent_and_leaves_no_temp(tmp_path):
    path = build_tiny_lm(tmp_path / "m")
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_lm(tmp_path / "m") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_chat_template_marks_assistant_tokens(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build_tiny_lm(tmp_path / "chat", chat=True))
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    out = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    marked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(marked) == "yo<|end|>"
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|bos|><|system|>s<|end|><|user|>hi<|end|><|assistant|>"


@pytest.mark.parametrize("chat", [False, True])
def test_tiny_lm_generates(tmp_path, chat):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_lm(tmp_path / "g", chat=chat)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    inputs = tok("ab", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= inputs["input_ids"].shape[1] + 4
