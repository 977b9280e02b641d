"""Writing checkpoints: publishing, pruning, cleaning up, archiving, uploading
(the protocol is in the package docstring). Pure Python: no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from tuneyard.checkpoints import MANIFEST, CheckpointError
from tuneyard.checkpoints.reader import (
    checkpoint_dir,
    is_published,
    list_published,
    model_files,
    sha256_file,
    stored_files,
    verify_checkpoint,
)
from tuneyard.storage.base import fsync_directory


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


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
    target = checkpoint_dir(checkpoints_root, number)
    if target.exists():
        raise CheckpointError(f"checkpoint {number} already exists at {target}")
    files = {}
    for path in stored_files(staging_dir):
        _fsync_file(path)
        files[path.relative_to(staging_dir).as_posix()] = {
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
        }
    for sub in sorted({p.parent for p in staging_dir.rglob("*") if p.is_file()}, reverse=True):
        fsync_directory(sub)
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
    fsync_directory(staging_dir)
    checkpoints_root.mkdir(parents=True, exist_ok=True)
    os.rename(staging_dir, target)
    fsync_directory(checkpoints_root)
    return target


def clean_leftovers(checkpoints_root: Path) -> list[Path]:
    """Remove everything under the root that is not a published checkpoint."""
    root = Path(checkpoints_root)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if is_published(entry):
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
        fsync_directory(archive_path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return archive_path.stat().st_size, sha256_file(archive_path)


def upload_checkpoint(*, store, directory: Path, prefix: str) -> None:
    """Copy a published checkpoint to the store under `prefix`, manifest last:
    a store has no atomic rename, so the manifest's presence is what says the
    copy is complete."""
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}: not a published checkpoint")
    for path in stored_files(directory):
        store.put_file(prefix + path.relative_to(directory).as_posix(), path)
    store.put_file(prefix + MANIFEST, directory / MANIFEST)
