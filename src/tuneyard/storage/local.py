"""`LocalStore`: objects as plain files under one root directory.

Key 'a/b/c' is the file `root/a/b/c`, so operators can inspect and back up the
store with ordinary tools. Writes go through a `.tmp-` file in the target's
directory and an atomic rename; `list` never shows those temp files, and
`cleanup_temp` removes the ones a crash left behind.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    folder_prefix,
    fsync_directory,
    iter_chunks,
    resolve_range,
    sha256_file,
    validate_key,
    write_atomically,
)

TEMP_GRACE_SECONDS = 3600.0
"""A temp file untouched this long is a crash leftover, not another process's live write."""


class LocalStore(ArtifactStore):
    """An artifact store in a local (or network-mounted) directory."""

    def __init__(self, root: Path) -> None:
        # Absolute, so a later chdir cannot move the store.
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.cleanup_temp()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _stat(self, key: str) -> os.stat_result:
        path = self._path(key)
        try:
            result = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        if not stat.S_ISREG(result.st_mode):
            # A folder of other objects ('a' when 'a/b' exists) is not an object.
            raise ObjectNotFound(key)
        return result

    def _make_parents(self, path: Path) -> None:
        """Create the missing folders above `path`, fsyncing each new entry's parent."""
        missing = []
        parent = path.parent
        while not parent.is_dir():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                if not folder.is_dir():
                    raise  # a file sits where the folder must go: key conflict
                continue  # a concurrent put created it
            fsync_directory(folder.parent)

    def put(self, key: str, stream: BinaryIO | Iterable[bytes] | bytes) -> ObjectInfo:
        path = self._path(key)
        self._make_parents(path)
        size, sha256 = write_atomically(path, iter_chunks(stream))
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def adopt_file(self, key: str, path: Path, *, sha256: str | None = None,
                   size: int | None = None) -> ObjectInfo:
        """Hard-link the file in (same filesystem), else copy it (`put_file`).

        The link goes to a temp name first and is renamed over the key, so a
        reader sees the old object or the new one, as with `put`; the source
        must already be durable (a published checkpoint's files are fsynced).
        """
        target = self._path(key)
        self._make_parents(target)
        tmp = target.with_name(f"{TEMP_PREFIX}{target.name}.{uuid.uuid4().hex[:12]}")
        try:
            os.link(path, tmp)
        except OSError:
            return self.put_file(key, path)  # another filesystem, or no hard links
        try:
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_directory(target.parent)
        if size is None:
            size = target.stat().st_size
        if sha256 is None:
            sha256 = sha256_file(target)
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def open_range(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = self._stat(key).st_size
        resolve_range(size=size, start=start, end=end)  # a bad range fails here, at once
        # The file is opened lazily, inside the generator: a generator that is
        # never iterated would otherwise hold an open file until GC.
        return self._read_span(key, start, end)

    def _read_span(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None  # deleted since open_range checked
        with handle:
            # A put since open_range looked renamed a new file over the path: the
            # span is measured on the file now open, so a reader gets one whole
            # version, never the start of a new one cut at the old one's length.
            size = os.fstat(handle.fileno()).st_size
            begin, stop = resolve_range(size=size, start=start, end=end)
            handle.seek(begin)
            remaining = stop - begin
            while remaining > 0:
                chunk = handle.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    return  # the file shrank underneath us; stop rather than spin
                remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        return self._stat(key).st_size

    def list(self, prefix: str = "") -> list[str]:
        folder = folder_prefix(prefix)
        top = self.root.joinpath(*folder.split("/")) if folder else self.root
        keys = []
        for dirpath, dirnames, filenames in os.walk(top):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if relative == "." else relative + "/"
            # Folders named like temp files cannot hold keys (keys may not contain
            # such segments); pruning keeps the walk away from them.
            dirnames[:] = [name for name in dirnames if not name.startswith(TEMP_PREFIX)]
            keys.extend(
                base + name
                for name in filenames
                if not name.startswith(TEMP_PREFIX) and os.path.isfile(os.path.join(dirpath, name))
            )
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # no such object: deleting it is already done
        fsync_directory(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        removed = super().delete_prefix(prefix)
        folder = folder_prefix(prefix)
        if folder:
            self._prune_empty(self.root.joinpath(*folder.split("/")))
        return removed

    def _prune_empty(self, top: Path) -> None:
        """Remove empty folders at and below `top`, so a deleted job leaves no trace.

        Only empty ones: a concurrent writer's temp file keeps its folder alive.
        """
        if not top.is_dir():
            return
        for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty

    def local_path(self, key: str) -> Path:
        self._stat(key)
        return self._path(key)

    def cleanup_temp(self, *, older_than: float = TEMP_GRACE_SECONDS) -> int:
        """Remove `.tmp-*` files not modified for `older_than` seconds; returns the count.

        Called when the store is opened. The grace period matters because the
        API server and workers share one store: a process starting up must not
        delete another's in-flight write. Pass `older_than=0` to remove all.
        """
        cutoff = time.time() - older_than
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass  # its writer finished or cleaned up meanwhile
        return removed
