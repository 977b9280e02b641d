"""The checkpoint protocol: never a partial checkpoint (see DESIGN.md).

A published checkpoint is a directory `<checkpoints_root>/<number:06d>/`:

    config.json, model.safetensors | adapter_config.json + adapter_model.safetensors,
    tokenizer files, ... (the model: loadable with from_pretrained)
    state/   optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json (to resume)
    checkpoint.json  (the manifest, written last: number, step, epoch, base model,
                      hyperparameters, sha256 + size of every other file, extra)

It is assembled in a staging directory, every file fsynced, the manifest
written last, then renamed into place; a directory without a manifest is a
leftover of a crash and `clean_leftovers` removes it. Pure Python: no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

MANIFEST = "checkpoint.json"
STATE_DIR = "state"
_CHUNK = 1 << 20


class CheckpointError(Exception):
    """A checkpoint on disk does not match its manifest (or has none)."""


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    """Every regular file under root except the manifest, sorted by relative path."""
    found = [p for p in root.rglob("*") if p.is_file()]
    found = [p for p in found if p.relative_to(root).as_posix() != MANIFEST]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def publish_checkpoint(
    *,
    staging_dir: Path,
    checkpoints_root: Path,
    number: int,
    step: int,
    epoch: float,
    base_model: str,
    hyper_parameters: dict,
    extra: dict,
) -> Path:
    """Seal `staging_dir` with a manifest and rename it to `<root>/<number:06d>`.

    `staging_dir` must be on the same filesystem as `checkpoints_root` (the
    rename is what makes publication atomic). Returns the published path.
    """
    staging_dir, checkpoints_root = Path(staging_dir), Path(checkpoints_root)
    target = checkpoints_root / f"{number:06d}"
    if target.exists():
        raise CheckpointError(f"checkpoint {number} already exists at {target}")
    files = {}
    for path in _files(staging_dir):
        _fsync_file(path)
        files[path.relative_to(staging_dir).as_posix()] = {
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
        }
    for sub in sorted({p.parent for p in staging_dir.rglob("*") if p.is_file()}, reverse=True):
        _fsync_dir(sub)
    manifest = {
        **extra,
        "number": number,
        "step": step,
        "epoch": epoch,
        "base_model": base_model,
        "hyper_parameters": hyper_parameters,
        "created_at": int(time.time()),
        "files": files,
    }
    manifest_path = staging_dir / MANIFEST
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(staging_dir)
    checkpoints_root.mkdir(parents=True, exist_ok=True)
    os.rename(staging_dir, target)
    _fsync_dir(checkpoints_root)
    return target


def _number(name: str) -> int | None:
    return int(name) if name.isdigit() else None


def list_published(checkpoints_root: Path) -> list[int]:
    """Numbers of the published checkpoints (those with a manifest), ascending."""
    root = Path(checkpoints_root)
    if not root.is_dir():
        return []
    numbers = [
        n for entry in root.iterdir()
        if (n := _number(entry.name)) is not None and (entry / MANIFEST).is_file()
    ]
    return sorted(numbers)  # ints: 2 before 10


def checkpoint_dir(checkpoints_root: Path, number: int) -> Path:
    return Path(checkpoints_root) / f"{number:06d}"


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}: not a published checkpoint")
    return json.loads(path.read_text())


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
    for path in _files(directory):
        rel = path.relative_to(directory).as_posix()
        if rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    if problems:
        raise CheckpointError(f"checkpoint {directory} is corrupt: " + "; ".join(problems))
    return manifest


def clean_leftovers(checkpoints_root: Path) -> list[Path]:
    """Remove everything under the root that is not a published checkpoint."""
    root = Path(checkpoints_root)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and _number(entry.name) is not None and (entry / MANIFEST).is_file():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry)
    return removed


def prune_published(checkpoints_root: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` local checkpoints (keep=0: keep all)."""
    if keep <= 0:
        return []
    numbers = list_published(checkpoints_root)
    removed = []
    for number in numbers[:-keep]:
        path = checkpoint_dir(checkpoints_root, number)
        # Drop the manifest first: a crash half-way leaves a leftover, not a
        # "published" directory with files missing.
        (path / MANIFEST).unlink()
        shutil.rmtree(path)
        removed.append(path)
    return removed


def model_files(checkpoint_dir: Path) -> list[str]:
    """Relative paths of the model part (everything but state/), manifest last."""
    manifest = read_manifest(checkpoint_dir)
    names = sorted(
        rel for rel in manifest["files"]
        if rel != STATE_DIR and not rel.startswith(STATE_DIR + "/")
    )
    return [*names, MANIFEST]


def build_model_archive(checkpoint_dir: Path, archive_path: Path) -> tuple[int, str]:
    """Write the model files (and the manifest) as an uncompressed tar.

    Members are at the top level of the archive, sorted, with fixed owner and
    mtime, so the same checkpoint always gives the same bytes. Extracting it
    gives a directory `from_pretrained` loads. Returns (size, sha256).
    """
    checkpoint_dir, archive_path = Path(checkpoint_dir), Path(archive_path)
    verify_checkpoint(checkpoint_dir)
    archive_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive_path.name}.", dir=archive_path.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for rel in model_files(checkpoint_dir):
                info = tar.gettarinfo(str(checkpoint_dir / rel), arcname=rel)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                info.mode = 0o644
                with open(checkpoint_dir / rel, "rb") as fh:
                    tar.addfile(info, fh)
        _fsync_file(tmp)
        os.replace(tmp, archive_path)
        _fsync_dir(archive_path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return archive_path.stat().st_size, sha256_file(archive_path)
