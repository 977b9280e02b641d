"""Load a model directory for a task, for the model server.

What a directory holds (`inspect_model_dir`, from the checkpoint reader): a
full model (loaded with `from_pretrained`), a LoRA adapter (loaded on its base
model and merged, so serving costs what the base costs), or a
sentence-transformers model; a published checkpoint's manifest supplies the
adapter's base, `labels` and `multi_label` where the model files do not say.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.checkpoints import CheckpointError
from tuneyard.checkpoints.reader import ModelDir, describe_model, load_kwargs
from tuneyard.models.resolve import hub_offline
from tuneyard.serving.errors import ModelLoadError

_DEFAULT_LABEL = re.compile(r"LABEL_\d+")


def inspect_model_dir(model_dir: str | Path, *, base_model_path: str | None = None) -> ModelDir:
    """Classify a directory without loading anything heavy (no torch); its
    problems are ModelLoadErrors, which the model server reports."""
    try:
        return describe_model(model_dir, base_model_path=base_model_path)
    except CheckpointError as exc:
        raise ModelLoadError(str(exc)) from None


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _load(what: str, source: ModelDir, fn, *args, **kwargs):
    """Call a loader; turn its failure into a ModelLoadError saying what failed."""
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported, not crashed on
        raise ModelLoadError(f"cannot load {what} from {source.path}: "
                             f"{type(exc).__name__}: {exc}") from exc


def _tokenizer(source: ModelDir):
    from transformers import AutoTokenizer

    return _load("the tokenizer", source, AutoTokenizer.from_pretrained,
                 source.tokenizer_source, local_files_only=hub_offline())


def _merge_adapter(base_model, source: ModelDir):
    from peft import PeftModel

    def merge():
        with warnings.catch_warnings():
            # peft reads an attribute transformers 5 deprecated: library noise
            # (and an error under the test suite's warnings-as-errors).
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                    FutureWarning)
            model = PeftModel.from_pretrained(base_model, source.source)
        return model.merge_and_unload()

    return _load("the LoRA adapter", source, merge)


def load_causal_lm(source: ModelDir, *, device: str):
    """(model, tokenizer) for text generation, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    if source.kind == "sentence-transformers":
        raise ModelLoadError(f"{source.path} is a sentence-transformers model; "
                             "it cannot generate text")
    if source.kind == "adapter":
        base = _load("the base model", source, AutoModelForCausalLM.from_pretrained,
                     source.base_model_path, **load_kwargs(device=device))
        model = _merge_adapter(base, source)
        # The checkpoint's generation settings (stop tokens) win over the base's.
        if source.has_file("generation_config.json"):
            model.generation_config = GenerationConfig.from_pretrained(source.source)
    else:
        model = _load("the model", source, AutoModelForCausalLM.from_pretrained,
                      source.source, **load_kwargs(device=device))
    return model.to(device).eval(), _tokenizer(source)


@dataclass
class ClassifierParts:
    model: Any
    tokenizer: Any
    labels: list[str] | None
    """Label names in id order (None for regression)."""
    multi_label: bool
    regression: bool


def _label_names(config, source: ModelDir) -> list[str]:
    names = [config.id2label[i] for i in sorted(config.id2label)]
    given = source.labels
    # A head saved without names says LABEL_0…; the manifest knows the real ones.
    if (given is not None and len(given) == len(names)
            and all(_DEFAULT_LABEL.fullmatch(str(n)) for n in names)):
        return [str(g) for g in given]
    return [str(n) for n in names]


def load_sequence_classifier(source: ModelDir, *, device: str,
                             regression: bool) -> ClassifierParts:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if source.kind == "sentence-transformers":
        raise ModelLoadError(f"{source.path} is a sentence-transformers model; "
                             "it has no classification head")
    head: dict[str, Any] = {}
    if regression:
        head = {"num_labels": 1, "problem_type": "regression"}
    elif source.kind == "adapter" and not source.has_file("config.json"):
        # The base has no head of the adapter's size: size it from the manifest.
        labels = source.labels
        if not labels:
            raise ModelLoadError(f"{source.path} holds a classification adapter but "
                                 "neither a config.json nor manifest labels name its labels")
        head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)}}
        if source.multi_label:
            head["problem_type"] = "multi_label_classification"
    elif source.kind == "adapter":
        config = AutoConfig.from_pretrained(source.source)
        head = {"num_labels": config.num_labels, "id2label": config.id2label,
                "label2id": config.label2id, "problem_type": config.problem_type}

    where = source.base_model_path if source.kind == "adapter" else source.source
    model = _load("the classification model", source,
                  AutoModelForSequenceClassification.from_pretrained, where,
                  **head, **load_kwargs(device=device))
    if source.kind == "adapter":
        model = _merge_adapter(model, source)
    tokenizer = _tokenizer(source)
    if tokenizer.pad_token is None:
        # Batches need padding; a decoder-only base (a tiny LM) may define none.
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        # A decoder classifies from its last non-pad token: it must know the pad id.
        model.config.pad_token_id = tokenizer.pad_token_id
    config = model.config
    multi = (config.problem_type == "multi_label_classification"
             or source.multi_label)
    return ClassifierParts(
        model=model.to(device).eval(),
        tokenizer=tokenizer,
        labels=None if regression else _label_names(config, source),
        multi_label=multi and not regression,
        regression=regression,
    )


def load_sentence_transformer(source: ModelDir, *, device: str):
    """A SentenceTransformer; a plain transformers dir gets mean pooling."""
    from sentence_transformers import SentenceTransformer

    if source.kind != "adapter":
        return _load("the embedding model", source, SentenceTransformer,
                     source.source, device=device, local_files_only=hub_offline())
    encoder = _load("the base embedding model", source, SentenceTransformer,
                    source.base_model_path, device=device, local_files_only=hub_offline())
    module = encoder[0]
    # sentence-transformers >= 5 keeps the transformer in `.model` (`auto_model`
    # became a read-only alias); older versions only have `auto_model`.
    attr = "model" if hasattr(module, "model") else "auto_model"
    setattr(module, attr, _merge_adapter(getattr(module, attr), source))
    return encoder
