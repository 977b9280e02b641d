"""`MemoryStore`: a dict-backed artifact store for tests and throwaway runs.

It keeps the same contract as the real stores (key rules, atomic puts, folder
prefixes, ranges), so tests can pass it instead of patching a filesystem.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    folder_prefix,
    iter_chunks,
    resolve_range,
    validate_key,
)


class MemoryStore(ArtifactStore):
    """Objects as immutable `bytes` in a dict guarded by a lock."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"

    def _get(self, key: str) -> bytes:
        validate_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectNotFound(key) from None

    def put(self, key: str, stream: BinaryIO | Iterable[bytes] | bytes) -> ObjectInfo:
        validate_key(key)
        digest = hashlib.sha256()
        buffer = bytearray()
        # Collect outside the lock, publish in one assignment under it: readers
        # see the old object or the whole new one, and a failing stream none.
        for chunk in iter_chunks(stream):
            buffer += chunk
            digest.update(chunk)
        data = bytes(buffer)
        with self._lock:
            self._objects[key] = data
        return ObjectInfo(key=key, size=len(data), sha256=digest.hexdigest())

    def open_range(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        data = self._get(key)  # a snapshot: later puts do not change what is read
        begin, stop = resolve_range(size=len(data), start=start, end=end)
        return (
            data[offset : min(offset + CHUNK_SIZE, stop)]
            for offset in range(begin, stop, CHUNK_SIZE)
        )

    def size(self, key: str) -> int:
        return len(self._get(key))

    def list(self, prefix: str = "") -> list[str]:
        folder = folder_prefix(prefix)
        with self._lock:
            return sorted(key for key in self._objects if key.startswith(folder))

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)
