"""The base-model catalog: which models can be fine-tuned, of what type, with
which default hyperparameters, and whether their weights can be had here.

The catalog is data (`catalog.yaml` in the package, plus `$TUNEYARD_HOME/models.yaml`);
checking availability never imports torch.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODEL_TYPES = ("completion", "chat", "classification", "embeddings")
BUILTIN_CATALOG = Path(__file__).parent / "catalog.yaml"

# The task a base model of each type trains by default.
DEFAULT_TASK = {
    "completion": "text-generation",
    "chat": "text-generation",
    "classification": "classification",
    "embeddings": "embedding",
}


@dataclass(frozen=True)
class BaseModel:
    name: str
    type: str
    source: str
    support_serverless: bool = True
    description: str = ""
    parameter_template: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return source_available(self.source)


def source_available(source: str) -> bool:
    """Whether the weights behind `source` can be loaded on this machine now."""
    if source.startswith("builtin:"):
        return True
    if source.startswith("package:"):
        return importlib.util.find_spec(source.removeprefix("package:")) is not None
    if source.startswith(("/", "~")):
        return Path(source).expanduser().exists()
    return _in_hf_cache(source)


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return False
    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str) and os.path.exists(found)


def _read(path: Path) -> list[dict]:
    doc = yaml.safe_load(path.read_text()) or {}
    entries = doc.get("models", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'models' must be a list")
    return entries


def _parse(entry: dict, origin: Path) -> BaseModel:
    try:
        model = BaseModel(
            name=str(entry["name"]),
            type=str(entry["type"]),
            source=str(entry["source"]),
            support_serverless=bool(entry.get("support_serverless", True)),
            description=str(entry.get("description", "")),
            parameter_template=dict(entry.get("parameter_template") or {}),
        )
    except KeyError as exc:
        raise ValueError(f"{origin}: a model entry lacks {exc.args[0]!r}: {entry}") from None
    if model.type not in MODEL_TYPES:
        raise ValueError(f"{origin}: model {model.name!r} has type {model.type!r}; "
                         f"expected one of {', '.join(MODEL_TYPES)}")
    return model


def load_catalog(home: Path | None = None) -> dict[str, BaseModel]:
    """Name → model, the shipped catalog overridden by the user's file."""
    models: dict[str, BaseModel] = {}
    paths = [BUILTIN_CATALOG]
    if home is not None and (home / "models.yaml").exists():
        paths.append(home / "models.yaml")
    for path in paths:
        for entry in _read(path):
            model = _parse(entry, path)
            models[model.name] = model
    return models
