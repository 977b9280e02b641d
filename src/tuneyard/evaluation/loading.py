"""Loading what a checkpoint (or a base model, for the baseline) holds, for evaluation.

A directory is one of: a full model (`from_pretrained`), a LoRA adapter
(`adapter_config.json` + weights; its base is `base_model_path`, else the
manifest's `base_model_path`, else the adapter's `base_model_name_or_path`),
or a sentence-transformers model (embedding). `checkpoint.json`, when present,
fills in labels and the base path the caller did not give.

Classification and regression decide between the checkpoint's own head and a
fresh one: the head is kept when the config is a sequence-classification
model whose labels (in id order) are the requested ones; otherwise (a base
model, the baseline) a fresh head is created, seeded, so the same baseline is
reproducible. torch and transformers are imported here, at module import:
only the evaluation child process imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch

from tuneyard.models.resolve import hub_offline

ADAPTER_CONFIG = "adapter_config.json"
MANIFEST = "checkpoint.json"
FRESH_HEAD_SEED = 0


def quiet_libraries() -> None:
    """No progress bars or info logs: the evaluation child reports through its files."""
    import transformers

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("sentence_transformers", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_kwargs() -> dict:
    # fp32 on CPU (half precision is slow there and lossy); on GPU the weights'
    # own dtype: training saves fp32, a bf16 base model stays bf16.
    dtype = "auto" if torch.cuda.is_available() else torch.float32
    return {"local_files_only": hub_offline(), "dtype": dtype}


def read_manifest(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def is_adapter(model_dir: str | Path) -> bool:
    return (Path(model_dir) / ADAPTER_CONFIG).is_file()


def adapter_base(model_dir: str | Path, base_model_path: str | None) -> str:
    """Where the adapter's base model is on this machine."""
    if base_model_path:
        return str(base_model_path)
    manifest = read_manifest(model_dir)
    if manifest.get("base_model_path"):
        return str(manifest["base_model_path"])
    config = json.loads((Path(model_dir) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{model_dir} is a LoRA adapter but names no base model; "
                         "pass base_model_path")
    return str(base)


def _has_tokenizer(path: str | Path) -> bool:
    p = Path(path)
    names = ("tokenizer.json", "tokenizer_config.json")
    return p.is_dir() and any((p / n).is_file() for n in names)


def load_tokenizer(model_dir: str, base: str | None):
    from transformers import AutoTokenizer

    source = model_dir if base is None or _has_tokenizer(model_dir) else base
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=hub_offline())
    if tokenizer.pad_token_id is None:
        # Padding positions are masked; any id does, and EOS is always there.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _attach_adapter(model, model_dir: str):
    from peft import PeftModel

    with warnings.catch_warnings():
        # peft asks transformers 5 for a deprecated attribute: library noise, and
        # an error under the test suite's warnings-as-errors.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                FutureWarning)
        return PeftModel.from_pretrained(model, model_dir, is_trainable=False)


def load_causal_lm(model_dir: str, *, base_model_path: str | None = None):
    """(model in eval mode on the device, tokenizer)."""
    from transformers import AutoModelForCausalLM

    base = adapter_base(model_dir, base_model_path) if is_adapter(model_dir) else None
    tokenizer = load_tokenizer(model_dir, base)
    model = AutoModelForCausalLM.from_pretrained(base or model_dir, **load_kwargs())
    if base is not None:
        model = _attach_adapter(model, model_dir)
    return model.to(device()).eval(), tokenizer


def problem_type(*, regression: bool, multi_label: bool) -> str:
    if regression:
        return "regression"
    return "multi_label_classification" if multi_label else "single_label_classification"


def _config_labels(config) -> list[str] | None:
    """The labels of a trained sequence-classification config, in id order."""
    if not any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
        return None
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    return [id2label[i] for i in range(len(id2label))] if id2label else None


def _head_labels(model_dir: str, config) -> list[str] | None:
    """The labels the checkpoint's head was trained on, in row order, if it has one."""
    manifest = read_manifest(model_dir)
    if manifest.get("labels"):
        return [str(label) for label in manifest["labels"]]
    return _config_labels(config)


def _choose_labels(model_dir: str, labels: list[str] | None, head: list[str] | None,
                   *, checkpoint: bool) -> list[str]:
    if not labels:
        if not head:
            raise ValueError(f"classification needs labels: none given, and {model_dir} "
                             "has no trained classification head to read them from")
        return head
    labels = [str(label) for label in labels]
    if head and set(head) == set(labels):
        return head  # the head's row order; label names are what the results show
    if head and checkpoint:
        raise ValueError(f"checkpoint {model_dir} was trained on labels {head}, "
                         f"not the requested {labels}")
    return labels


def load_sequence_model(model_dir: str, *, labels: list[str] | None, multi_label: bool,
                        regression: bool, base_model_path: str | None = None):
    """(model, tokenizer, labels, fresh_head). Regression: one output, labels ["value"].

    A tuneyard checkpoint (it has a manifest) whose head does not fit the
    request is an error, not silently replaced by a fresh head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base = adapter_base(model_dir, base_model_path) if is_adapter(model_dir) else None
    tokenizer = load_tokenizer(model_dir, base)
    source = base or model_dir
    config = AutoConfig.from_pretrained(source, local_files_only=hub_offline())
    manifest = read_manifest(model_dir)
    checkpoint = bool(manifest)
    if checkpoint and not regression and bool(manifest.get("multi_label")) != multi_label:
        raise ValueError(f"checkpoint {model_dir} was trained with multi_label="
                         f"{bool(manifest.get('multi_label'))}, not {multi_label}")
    if regression:
        labels, head_labels = ["value"], None
    else:
        head_labels = _head_labels(model_dir, config)
        labels = _choose_labels(model_dir, labels, head_labels, checkpoint=checkpoint)
    wanted = problem_type(regression=regression, multi_label=multi_label)
    own = _config_labels(config)
    keeps_head = base is None and own is not None and config.problem_type in (None, wanted) and (
        own == labels if not regression else len(own) == 1)
    if checkpoint and base is None and not keeps_head:
        raise ValueError(f"checkpoint {model_dir} has no trained {wanted} head to evaluate")
    head = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": wanted,
    }
    # A fresh head's initialisation draws from the global RNG: seed a private
    # copy so the baseline is the same every time and the caller's RNG is untouched.
    # (A LoRA checkpoint's head is in its adapter and replaces this one.)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FRESH_HEAD_SEED)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, **head, ignore_mismatched_sizes=not keeps_head, **load_kwargs()
        )
    if base is not None:
        model = _attach_adapter(model, model_dir)
    if model.config.pad_token_id is None:
        # Decoder models pool the last non-pad token: they must know the pad id.
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device()).eval(), tokenizer, labels, not keeps_head and base is None


def load_sentence_model(model_dir: str, *, base_model_path: str | None = None,
                        max_seq_length: int | None = None):
    """A SentenceTransformer (a plain transformers model gets mean pooling).

    `base_model_path` is accepted for symmetry; embedding training writes full
    sentence-transformers checkpoints, never adapters.
    """
    from sentence_transformers import SentenceTransformer

    if is_adapter(model_dir):
        raise ValueError(f"{model_dir} holds a LoRA adapter; embedding evaluation needs a "
                         "full sentence-transformers model")
    model = SentenceTransformer(str(model_dir), device=str(device()),
                                local_files_only=hub_offline())
    if max_seq_length and (model.max_seq_length is None or model.max_seq_length > max_seq_length):
        model.max_seq_length = max_seq_length
    return model.eval()
