"""The artifact store interface: keys, object info, errors and shared helpers.

An artifact store holds immutable-ish blobs (checkpoint archives, datasets,
evaluation results) under '/'-separated relative keys. Implementations are a
local directory (`LocalStore`), a dict (`MemoryStore`, for tests) and any
S3-compatible bucket (`S3Store`), so nothing here assumes a filesystem: objects go
in as streams and come out as iterators of chunks.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk when streaming objects in and out (1 MiB)."""

TEMP_PREFIX = ".tmp-"
"""Name prefix of in-flight files; reserved, so no key segment may start with it."""


class ObjectNotFound(KeyError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        # KeyError's default str() is the repr of its argument; say what is missing.
        return f"no object stored under key {self.key!r}"


class StoreUnavailable(ValueError):
    """The configured store cannot be used (no bucket, credentials refused, unreachable).

    A ValueError, as a bad storage URL is: both mean the configuration is wrong,
    and `tuneyard serve` / `tuneyard worker` refuse to start with its message.
    """


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a completed `put` wrote."""

    key: str
    size: int
    sha256: str
    """Lowercase hex digest of the object's bytes."""


def validate_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise ValueError saying why.

    Keys must read the same on a filesystem and in an object store, so anything
    that a filesystem would interpret (absolute paths, '..', '.', empty
    segments, backslashes, NUL) is refused rather than normalised.
    """
    if not isinstance(key, str):
        raise TypeError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("object key must not be empty")
    if key.startswith("/"):
        raise ValueError(f"object key must be relative, got {key!r}")
    if "\\" in key:
        raise ValueError(f"object key must use '/' separators, not backslashes: {key!r}")
    if "\x00" in key:
        raise ValueError(f"object key must not contain NUL: {key!r}")
    for segment in key.split("/"):
        if segment == "":
            raise ValueError(f"object key has an empty segment: {key!r}")
        if segment in (".", ".."):
            raise ValueError(f"object key must not contain {segment!r} segments: {key!r}")
        if segment.startswith(TEMP_PREFIX):
            raise ValueError(
                f"object key segments must not start with {TEMP_PREFIX!r} "
                f"(reserved for in-flight writes): {key!r}"
            )
    return key


def folder_prefix(prefix: str) -> str:
    """Normalise a listing prefix to '' (everything) or 'a/b/' (keys under folder a/b).

    Prefixes name folders, not string prefixes: 'jobs/tr-1' must never match
    'jobs/tr-10/...', or `delete_prefix` would remove another job's files.
    """
    if prefix == "":
        return ""
    folder = prefix[:-1] if prefix.endswith("/") else prefix
    return validate_key(folder) + "/"


def resolve_range(*, size: int, start: int, end: int | None) -> tuple[int, int]:
    """Turn an inclusive (start, end) request into a half-open [start, stop) span.

    `end` past the object is clamped, as HTTP does; `start == size` is an empty
    read; anything else out of bounds is a caller error.
    """
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if start > size:
        raise ValueError(f"range start {start} is beyond the object's {size} bytes")
    if end is None:
        return start, size
    if end < start:
        raise ValueError(f"range end {end} is before its start {start}")
    return start, min(end + 1, size)


def iter_chunks(stream: BinaryIO | Iterable[bytes] | bytes) -> Iterator[bytes]:
    """Yield the bytes of a file-like object or an iterable of chunks, CHUNK_SIZE at a time."""
    if isinstance(stream, bytes | bytearray | memoryview):
        # Iterating bytes would yield ints; treat a bytes value as one chunk.
        yield bytes(stream)
        return
    read = getattr(stream, "read", None)
    if read is not None:
        # Bounded reads: a file object is never slurped whole into memory.
        while chunk := read(CHUNK_SIZE):
            yield chunk
        return
    for chunk in stream:
        if chunk:
            yield chunk


def fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows, where directories cannot be opened this way
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a local file, read in CHUNK_SIZE pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write `chunks` to `path` so that a reader sees the old file or the whole new one.

    The data goes to a `.tmp-` file in the same directory (a rename is only
    atomic within one filesystem), is fsynced, renamed over `path`, and the
    directory is fsynced so the rename itself survives a crash. Returns the
    size and sha256 hex digest of what was written. The parent must exist.
    """
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-written temp file behind.
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return size, digest.hexdigest()


class ArtifactStore(ABC):
    """Blobs under '/'-separated keys; every method validates its key first.

    Writes are atomic (a reader sees no object, the old one, or the whole new
    one) and streamed (never read whole into memory). A missing key raises
    `ObjectNotFound`; a malformed key raises ValueError.
    """

    @abstractmethod
    def put(self, key: str, stream: BinaryIO | Iterable[bytes] | bytes) -> ObjectInfo:
        """Store the bytes of `stream` under `key`, replacing any object there."""

    @abstractmethod
    def open_range(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Chunks (about CHUNK_SIZE each) of bytes start..end, `end` inclusive as in HTTP.

        Raises `ObjectNotFound` and range errors when called, not on first iteration.
        """

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under folder `prefix` ('' for all; 'a' and 'a/' mean the same)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the contents of a local file."""
        validate_key(key)
        with open(path, "rb") as handle:
            return self.put(key, handle)

    def adopt_file(self, key: str, path: Path, *, sha256: str | None = None,
                   size: int | None = None) -> ObjectInfo:
        """Store a local file that nobody will modify again (a published checkpoint's).

        `sha256`/`size`, when the caller already knows them (a manifest), are
        trusted, so a store that can take the file without reading it (a local
        store on the same filesystem: a hard link) need not hash it again.
        This default copies it, as `put_file`.
        """
        return self.put_file(key, path)

    def read_bytes(self, key: str) -> bytes:
        """The whole object in memory: for small objects such as manifests."""
        return b"".join(self.open_range(key))

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under folder `prefix`; returns how many were removed."""
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def local_path(self, key: str) -> Path | None:
        """The object's real file, for stores that have one; None means use `open_range`."""
        validate_key(key)
        return None

    def download_to(self, key: str, path: Path) -> None:
        """Copy the object into a local file (atomically), creating parent folders."""
        chunks = self.open_range(key)  # raises ObjectNotFound before touching the disk
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, chunks)
