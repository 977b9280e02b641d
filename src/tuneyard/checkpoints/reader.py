"""Reading checkpoints: the only code that interprets the format (see the
package docstring).

- Published checkpoints on disk: `list_published`, `checkpoint_dir`,
  `read_manifest`, `verify_checkpoint`, `model_files`.
- What a model directory holds, for every loader (training, evaluation,
  serving): `describe_model` → `ModelDir` (kind, manifest, an adapter's base
  model, labels, where the tokenizer is), without loading anything.
- `load_kwargs`: the one dtype policy of every `from_pretrained`.
- `download_checkpoint`: a checkpoint from the artifact store onto local disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.checkpoints import ADAPTER_CONFIG, MANIFEST, STATE_DIR, CheckpointError

_CHUNK = 1 << 20
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_dir(checkpoints_root: Path, number: int) -> Path:
    return Path(checkpoints_root) / f"{number:06d}"


def checkpoint_number(name: str) -> int | None:
    """The number a checkpoint directory's name stands for, else None."""
    return int(name) if name.isdigit() else None


def is_published(directory: Path) -> bool:
    """A numbered directory with a manifest (files not checked: `verify_checkpoint`)."""
    directory = Path(directory)
    return (directory.is_dir() and checkpoint_number(directory.name) is not None
            and (directory / MANIFEST).is_file())


def list_published(checkpoints_root: Path) -> list[int]:
    """Numbers of the published checkpoints (those with a manifest), ascending."""
    root = Path(checkpoints_root)
    if not root.is_dir():
        return []
    numbers = [checkpoint_number(entry.name) for entry in root.iterdir() if is_published(entry)]
    return sorted(n for n in numbers if n is not None)  # ints: 2 before 10


def read_manifest(directory: Path) -> dict:
    """The manifest of a published checkpoint; CheckpointError if it has none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}: not a published checkpoint")
    return _read_json(path)


def find_manifest(directory: str | Path) -> dict:
    """The manifest if `directory` is a tuneyard checkpoint, else {} (a base model)."""
    path = Path(directory).expanduser() / MANIFEST
    return _read_json(path) if path.is_file() else {}


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"cannot read {path}: not a JSON object")
    return value


def stored_files(root: Path) -> list[Path]:
    """Every regular file under root except the manifest, sorted by relative path."""
    found = [p for p in Path(root).rglob("*") if p.is_file()]
    found = [p for p in found if p.relative_to(root).as_posix() != MANIFEST]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def is_state(rel: str) -> bool:
    """Whether a relative path is resume state (not needed to load the model)."""
    return rel == STATE_DIR or rel.startswith(STATE_DIR + "/")


def verify_checkpoint(directory: Path) -> dict:
    """Check every file's size and sha256 against the manifest; return the manifest.

    Files on disk that the manifest does not list are errors too: a published
    checkpoint never changes.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = manifest.get("files", {})
    problems = []
    for rel, meta in sorted(listed.items()):
        path = directory / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != meta["size"]:
            problems.append(f"{rel}: size {path.stat().st_size} != {meta['size']}")
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"{rel}: sha256 mismatch")
    for path in stored_files(directory):
        rel = path.relative_to(directory).as_posix()
        if rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    if problems:
        raise CheckpointError(f"checkpoint {directory} is corrupt: " + "; ".join(problems))
    return manifest


def has_state(manifest: dict) -> bool:
    """Whether the checkpoint carries what resuming its training needs."""
    return any(is_state(rel) for rel in manifest.get("files", {}))


def model_files(directory: Path) -> list[str]:
    """Relative paths of the model part (everything but state/), manifest last."""
    manifest = read_manifest(directory)
    return [*sorted(rel for rel in manifest["files"] if not is_state(rel)), MANIFEST]


def manifest_labels(manifest: dict) -> list[str] | None:
    """Label names in the head's row order, or None (no labels recorded)."""
    labels = manifest.get("labels")
    return [str(label) for label in labels] if labels else None


@dataclass(frozen=True)
class ModelDir:
    """What a model source holds, read from its small JSON files only."""

    source: str
    """The directory, or (a base model not on disk) a Hugging Face hub id."""
    kind: str
    """"full" | "adapter" | "sentence-transformers"."""
    manifest: dict
    """{} unless it is a tuneyard checkpoint."""
    adapter_config: dict | None = None
    base_model_path: str | None = None
    """Where an adapter's base model is on this machine (None for other kinds)."""

    @property
    def path(self) -> Path:
        return Path(self.source)

    @property
    def is_adapter(self) -> bool:
        return self.kind == "adapter"

    @property
    def is_checkpoint(self) -> bool:
        return bool(self.manifest)

    @property
    def labels(self) -> list[str] | None:
        return manifest_labels(self.manifest)

    @property
    def multi_label(self) -> bool:
        return bool(self.manifest.get("multi_label"))

    def has_file(self, name: str) -> bool:
        return (self.path / name).is_file()

    def has_tokenizer(self) -> bool:
        return any(self.has_file(name) for name in _TOKENIZER_FILES)

    @property
    def tokenizer_source(self) -> str:
        """An adapter saved without a tokenizer uses its base model's."""
        if self.is_adapter and not self.has_tokenizer():
            return str(self.base_model_path)
        return self.source


def _looks_local(reference: str) -> bool:
    return reference.startswith(("/", "~", "."))


def adapter_base(directory: Path, *, manifest: dict, adapter_config: dict,
                 base_model_path: str | None) -> str:
    """Where an adapter's base model is, here.

    Candidates in order: the caller's path (resolved on this machine from the
    job's catalog entry), the manifest's `base_model_path`, then the adapter's
    own `base_model_name_or_path`. The last two were recorded on the training
    machine, so a local path among them that does not exist here is skipped.
    """
    candidates = [str(c) for c in (base_model_path, manifest.get("base_model_path"),
                                   adapter_config.get("base_model_name_or_path")) if c]
    if not candidates:
        raise CheckpointError(f"{directory} holds a LoRA adapter but names no base model: "
                              "pass base_model_path")
    for candidate in candidates:
        if not _looks_local(candidate):
            return candidate  # a hub id
        if Path(candidate).expanduser().exists():
            return str(Path(candidate).expanduser())
    raise CheckpointError(f"{directory} holds a LoRA adapter whose base model "
                          f"{candidates[0]} does not exist here")


def describe_model(source: str | Path, *, base_model_path: str | None = None) -> ModelDir:
    """Classify a model source without loading it (no torch).

    `source` is a directory (a checkpoint or a base model) or, for a base
    model only in the Hugging Face cache, a hub id. `base_model_path` is the
    caller's idea of an adapter's base; see `adapter_base`.
    """
    text = str(source)
    root = Path(text).expanduser()
    if not root.is_dir():
        if _looks_local(text) or root.exists():
            raise CheckpointError(f"model directory {root} does not exist")
        return ModelDir(text, "full", {})  # a hub id: from_pretrained resolves it
    manifest = find_manifest(root)
    if (root / "modules.json").is_file():
        return ModelDir(str(root), "sentence-transformers", manifest)
    if (root / ADAPTER_CONFIG).is_file():
        adapter = _read_json(root / ADAPTER_CONFIG)
        base = adapter_base(root, manifest=manifest, adapter_config=adapter,
                            base_model_path=base_model_path)
        return ModelDir(str(root), "adapter", manifest, adapter, base)
    if (root / "config.json").is_file():
        return ModelDir(str(root), "full", manifest)
    raise CheckpointError(
        f"{root} holds no model: expected config.json (a full model), {ADAPTER_CONFIG} "
        "(a LoRA adapter) or modules.json (a sentence-transformers model)"
    )


def load_kwargs(*, device: str, training: bool = False) -> dict[str, Any]:
    """The from_pretrained options of every loader: never download while the
    hub is offline, and one dtype policy.

    Training loads fp32 on any device: the optimizer needs full-precision
    weights, and mixed precision comes from autocast (the Trainer's bf16/fp16).
    Inference loads fp32 on a CPU (half precision is slow and lossy there) and
    the weights' own dtype on an accelerator: checkpoints are saved fp32 and
    stay fp32, a bf16 base model stays bf16 and takes half the memory.
    """
    import torch

    from tuneyard.models.resolve import hub_offline

    cpu = str(device).split(":", 1)[0] == "cpu"
    dtype = torch.float32 if training or cpu else "auto"
    return {"local_files_only": hub_offline(), "dtype": dtype}


def download_checkpoint(*, store, prefix: str, target: Path, model_only: bool = False) -> Path:
    """Copy the checkpoint stored under `prefix` to `target`, manifest last.

    Whatever `target` held is replaced. The files land in a sibling staging
    directory renamed into place, so `target` holds a whole checkpoint or
    nothing. `model_only` leaves out the resume state (serving, evaluation and
    continued training do not need it).
    """
    target = Path(target)
    keys = store.list(prefix)
    manifest_key = prefix + MANIFEST
    if manifest_key not in keys:
        raise CheckpointError(f"no checkpoint in the store at {prefix}: it has no {MANIFEST}")
    shutil.rmtree(target, ignore_errors=True)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for key in sorted(keys, key=lambda k: k == manifest_key):  # manifest last
        rel = key[len(prefix):]
        if not (model_only and is_state(rel)):
            _fetch(store, key, staging / rel)
    staging.rename(target)
    return target


def _fetch(store, key: str, dest: Path) -> None:
    """One stored file to `dest`: a hard link to a local store's own file when it
    is on the same filesystem (stored objects are replaced, never modified, and
    readers never write to a downloaded checkpoint), else a copy."""
    source = store.local_path(key)
    if source is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, dest)
            return
        except OSError:
            pass  # another filesystem: copy
    store.download_to(key, dest)
