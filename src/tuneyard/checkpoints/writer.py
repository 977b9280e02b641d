"""Writing checkpoints: publishing, pruning, cleaning up, archiving, uploading
(the protocol is in the package docstring). Pure Python: no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tuneyard.checkpoints import MANIFEST, CheckpointError
from tuneyard.checkpoints.reader import (
    checkpoint_dir,
    is_published,
    list_published,
    model_files,
    read_manifest,
    sha256_file,
    stored_files,
    verify_checkpoint,
)
from tuneyard.storage.base import fsync_directory


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _digest_and_sync(paths: list[Path]) -> dict[Path, str]:
    """sha256 of every file, while another thread fsyncs them.

    One read of each file (from the page cache: it was just written) for the
    digest, and the flush to disk beside it: the two overlap (both release the
    GIL), so making a checkpoint durable and hashing it costs about the longer
    of the two, not their sum.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneyard-fsync") as pool:
        synced = [pool.submit(_fsync_file, path) for path in paths]
        digests = {path: sha256_file(path) for path in paths}
        for future in synced:
            future.result()
    return digests


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
    paths = stored_files(staging_dir)
    digests = _digest_and_sync(paths)
    files = {
        path.relative_to(staging_dir).as_posix(): {"sha256": digests[path],
                                                   "size": path.stat().st_size}
        for path in paths
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


_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_CHUNK = 1 << 20


def _member_header(rel: str, size: int) -> bytes:
    info = tarfile.TarInfo(rel)
    info.size, info.mode, info.type = size, 0o644, tarfile.REGTYPE
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def model_archive_chunks(checkpoint_dir: Path) -> Iterator[bytes]:
    """The model archive's bytes, streamed: an uncompressed tar of the model
    files (and the manifest).

    Members are at the top level of the archive, sorted, manifest last, with
    fixed owner, mode and mtime, so the same checkpoint always gives the same
    bytes (what `tarfile` writes for them). Extracting it gives a directory
    `from_pretrained` loads. Each file is read once, straight into the
    consumer (a store's `put`, which hashes as it writes): no temporary tar,
    no second copy, no re-hash. Nothing is verified here: the caller decides
    (`build_model_archive` checks the manifest first; the worker archives
    what it has just published).
    """
    checkpoint_dir = Path(checkpoint_dir)
    total = 0
    for rel in model_files(checkpoint_dir):
        with open(checkpoint_dir / rel, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            header = _member_header(rel, size)
            total += len(header)
            yield header
            remaining = size
            while remaining > 0:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    raise CheckpointError(f"{checkpoint_dir / rel} shrank while archived")
                remaining -= len(chunk)
                yield chunk
        total += size
        if size % _BLOCK:
            pad = _BLOCK - size % _BLOCK
            total += pad
            yield b"\0" * pad
    # The end-of-archive marker (two zero blocks), padded to a whole record, as tarfile does.
    end = 2 * _BLOCK
    end += (-(total + end)) % _RECORD
    yield b"\0" * end


def build_model_archive(checkpoint_dir: Path, archive_path: Path) -> tuple[int, str]:
    """Verify the checkpoint, then write its model archive (`model_archive_chunks`)
    to a local file, atomically. Returns (size, sha256)."""
    checkpoint_dir, archive_path = Path(checkpoint_dir), Path(archive_path)
    verify_checkpoint(checkpoint_dir)
    archive_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive_path.name}.", dir=archive_path.parent)
    tmp = Path(tmp_name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as raw:
            for chunk in model_archive_chunks(checkpoint_dir):
                raw.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, archive_path)
        fsync_directory(archive_path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def store_model_archive(*, store, directory: Path, key: str):
    """Stream a just-published checkpoint's model archive straight into the store
    under `key` (one read of each model file, hashed as the store writes it).
    Returns the store's ObjectInfo (size, sha256)."""
    return store.put(key, model_archive_chunks(directory))


def upload_checkpoint(*, store, directory: Path, prefix: str) -> None:
    """Put a published checkpoint into the store under `prefix`, manifest last:
    a store has no atomic rename, so the manifest's presence is what says the
    copy is complete.

    Each file goes through the store's `adopt_file` with the manifest's own
    digest (no re-hash): a local store on the same filesystem hard-links it
    (the published files are never modified again), others copy it."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = manifest.get("files", {})
    for path in stored_files(directory):
        rel = path.relative_to(directory).as_posix()
        meta = listed.get(rel) or {}
        store.adopt_file(prefix + rel, path, sha256=meta.get("sha256"), size=meta.get("size"))
    store.adopt_file(prefix + MANIFEST, directory / MANIFEST)
