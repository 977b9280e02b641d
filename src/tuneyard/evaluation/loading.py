"""Loading what a checkpoint (or a base model, for the baseline) holds, for evaluation.

What a directory holds (a full model, a LoRA adapter and where its base is, a
sentence-transformers model; its manifest's labels) is the checkpoint
reader's call (`tuneyard.checkpoints.reader.describe_model`), and so is the
dtype (`load_kwargs`).

Classification and regression decide between the checkpoint's own head and a
fresh one: the head is kept when the config is a sequence-classification
model whose labels (in id order) are the requested ones; otherwise (a base
model, the baseline) a fresh head is created, seeded, so the same baseline is
reproducible. torch and transformers are imported here, at module import:
only the evaluation child process imports this module.
"""

from __future__ import annotations

import logging
import os
import warnings

import torch

from tuneyard.checkpoints.reader import ModelDir, describe_model, load_kwargs
from tuneyard.models.resolve import hub_offline

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


def load_tokenizer(source: ModelDir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_source,
                                              local_files_only=hub_offline())
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

    source = describe_model(model_dir, base_model_path=base_model_path)
    tokenizer = load_tokenizer(source)
    where = source.base_model_path if source.is_adapter else source.source
    model = AutoModelForCausalLM.from_pretrained(where, **load_kwargs(device=str(device())))
    if source.is_adapter:
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


def _head_labels(source: ModelDir, config) -> list[str] | None:
    """The labels the checkpoint's head was trained on, in row order, if it has one."""
    return source.labels or _config_labels(config)


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

    described = describe_model(model_dir, base_model_path=base_model_path)
    base = described.base_model_path if described.is_adapter else None
    tokenizer = load_tokenizer(described)
    source = base or described.source
    config = AutoConfig.from_pretrained(source, local_files_only=hub_offline())
    checkpoint = described.is_checkpoint
    if checkpoint and not regression and described.multi_label != multi_label:
        raise ValueError(f"checkpoint {model_dir} was trained with multi_label="
                         f"{described.multi_label}, not {multi_label}")
    if regression:
        labels, head_labels = ["value"], None
    else:
        head_labels = _head_labels(described, config)
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
            source, **head, ignore_mismatched_sizes=not keeps_head,
            **load_kwargs(device=str(device())),
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

    if describe_model(model_dir, base_model_path=base_model_path).is_adapter:
        raise ValueError(f"{model_dir} holds a LoRA adapter; embedding evaluation needs a "
                         "full sentence-transformers model")
    model = SentenceTransformer(str(model_dir), device=str(device()),
                                local_files_only=hub_offline())
    if max_seq_length and (model.max_seq_length is None or model.max_seq_length > max_seq_length):
        model.max_seq_length = max_seq_length
    return model.eval()
