"""Find out what a model directory holds and load it for a task.

Three layouts (see `inspect_model_dir`): a full model (`config.json` + weights,
loaded with `from_pretrained`), a LoRA adapter (`adapter_config.json`, loaded
on its base model and merged, so serving costs what the base costs), and a
sentence-transformers model (`modules.json`). A published checkpoint also has
`checkpoint.json` (its manifest), read for `base_model_path`, `labels` and
`multi_label` where the model files do not say.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneyard.models.resolve import hub_offline
from tuneyard.serving.errors import ModelLoadError

MANIFEST = "checkpoint.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_DEFAULT_LABEL = re.compile(r"LABEL_\d+")


@dataclass
class ModelSource:
    kind: str
    """"full" | "adapter" | "sentence-transformers"."""
    model_dir: Path
    manifest: dict = field(default_factory=dict)
    adapter_config: dict | None = None
    base_model_path: str | None = None
    """Where an adapter's base model is (None for the other kinds)."""

    def has_tokenizer(self) -> bool:
        return any((self.model_dir / name).is_file() for name in _TOKENIZER_FILES)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None


def inspect_model_dir(model_dir: str | Path, *, base_model_path: str | None = None) -> ModelSource:
    """Classify a directory without loading anything heavy (no torch)."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelLoadError(f"model directory {root} does not exist")
    manifest = _read_json(root / MANIFEST) if (root / MANIFEST).is_file() else {}
    if (root / "modules.json").is_file():
        return ModelSource("sentence-transformers", root, manifest)
    if (root / "adapter_config.json").is_file():
        adapter = _read_json(root / "adapter_config.json")
        base = (base_model_path or manifest.get("base_model_path")
                or adapter.get("base_model_name_or_path"))
        if not base:
            raise ModelLoadError(
                f"{root} holds a LoRA adapter but names no base model: pass base_model_path"
            )
        if base.startswith(("/", "~")) and not Path(base).expanduser().exists():
            raise ModelLoadError(
                f"{root} holds a LoRA adapter whose base model {base} does not exist here"
            )
        return ModelSource("adapter", root, manifest, adapter, str(Path(base).expanduser())
                           if base.startswith(("/", "~")) else base)
    if (root / "config.json").is_file():
        return ModelSource("full", root, manifest)
    raise ModelLoadError(
        f"{root} holds no model: expected config.json (a full model), adapter_config.json "
        "(a LoRA adapter) or modules.json (a sentence-transformers model)"
    )


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_kwargs(device: str) -> dict[str, Any]:
    """from_pretrained options: never download while offline; fp32 on CPU (half
    precision is slow and lossy there), the weights' own dtype on a GPU."""
    import torch

    dtype = torch.float32 if device == "cpu" else "auto"
    return {"local_files_only": hub_offline(), "dtype": dtype}


def _load(what: str, source: ModelSource, fn, *args, **kwargs):
    """Call a loader; turn its failure into a ModelLoadError saying what failed."""
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported, not crashed on
        raise ModelLoadError(f"cannot load {what} from {source.model_dir}: "
                             f"{type(exc).__name__}: {exc}") from exc


def _tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    where = source.model_dir if source.kind != "adapter" or source.has_tokenizer() \
        else source.base_model_path
    return _load("the tokenizer", source, AutoTokenizer.from_pretrained, str(where),
                 local_files_only=hub_offline())


def _merge_adapter(base_model, source: ModelSource):
    from peft import PeftModel

    def merge():
        with warnings.catch_warnings():
            # peft reads an attribute transformers 5 deprecated: library noise
            # (and an error under the test suite's warnings-as-errors).
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                    FutureWarning)
            model = PeftModel.from_pretrained(base_model, str(source.model_dir))
        return model.merge_and_unload()

    return _load("the LoRA adapter", source, merge)


def load_causal_lm(source: ModelSource, *, device: str):
    """(model, tokenizer) for text generation, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    if source.kind == "sentence-transformers":
        raise ModelLoadError(f"{source.model_dir} is a sentence-transformers model; "
                             "it cannot generate text")
    if source.kind == "adapter":
        base = _load("the base model", source, AutoModelForCausalLM.from_pretrained,
                     source.base_model_path, **load_kwargs(device))
        model = _merge_adapter(base, source)
        # The checkpoint's generation settings (stop tokens) win over the base's.
        if (source.model_dir / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(str(source.model_dir))
    else:
        model = _load("the model", source, AutoModelForCausalLM.from_pretrained,
                      str(source.model_dir), **load_kwargs(device))
    return model.to(device).eval(), _tokenizer(source)


@dataclass
class ClassifierParts:
    model: Any
    tokenizer: Any
    labels: list[str] | None
    """Label names in id order (None for regression)."""
    multi_label: bool
    regression: bool


def _label_names(config, manifest: dict) -> list[str]:
    names = [config.id2label[i] for i in sorted(config.id2label)]
    given = manifest.get("labels")
    # A head saved without names says LABEL_0…; the manifest knows the real ones.
    if (isinstance(given, list) and len(given) == len(names)
            and all(_DEFAULT_LABEL.fullmatch(str(n)) for n in names)):
        return [str(g) for g in given]
    return [str(n) for n in names]


def load_sequence_classifier(source: ModelSource, *, device: str,
                             regression: bool) -> ClassifierParts:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if source.kind == "sentence-transformers":
        raise ModelLoadError(f"{source.model_dir} is a sentence-transformers model; "
                             "it has no classification head")
    manifest = source.manifest
    head: dict[str, Any] = {}
    if regression:
        head = {"num_labels": 1, "problem_type": "regression"}
    elif source.kind == "adapter" and not (source.model_dir / "config.json").is_file():
        # The base has no head of the adapter's size: size it from the manifest.
        labels = manifest.get("labels")
        if not labels:
            raise ModelLoadError(f"{source.model_dir} holds a classification adapter but "
                                 "neither a config.json nor manifest labels name its labels")
        head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)}}
        if manifest.get("multi_label"):
            head["problem_type"] = "multi_label_classification"
    elif source.kind == "adapter":
        config = AutoConfig.from_pretrained(str(source.model_dir))
        head = {"num_labels": config.num_labels, "id2label": config.id2label,
                "label2id": config.label2id, "problem_type": config.problem_type}

    where = source.base_model_path if source.kind == "adapter" else str(source.model_dir)
    model = _load("the classification model", source,
                  AutoModelForSequenceClassification.from_pretrained, where,
                  **head, **load_kwargs(device))
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
             or bool(manifest.get("multi_label")))
    return ClassifierParts(
        model=model.to(device).eval(),
        tokenizer=tokenizer,
        labels=None if regression else _label_names(config, manifest),
        multi_label=multi and not regression,
        regression=regression,
    )


def load_sentence_transformer(source: ModelSource, *, device: str):
    """A SentenceTransformer; a plain transformers dir gets mean pooling."""
    from sentence_transformers import SentenceTransformer

    if source.kind != "adapter":
        return _load("the embedding model", source, SentenceTransformer,
                     str(source.model_dir), device=device, local_files_only=hub_offline())
    encoder = _load("the base embedding model", source, SentenceTransformer,
                    source.base_model_path, device=device, local_files_only=hub_offline())
    module = encoder[0]
    # sentence-transformers >= 5 keeps the transformer in `.model` (`auto_model`
    # became a read-only alias); older versions only have `auto_model`.
    attr = "model" if hasattr(module, "model") else "auto_model"
    setattr(module, attr, _merge_adapter(getattr(module, attr), source))
    return encoder
