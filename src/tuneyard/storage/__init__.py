"""Artifact storage: where datasets, checkpoints and results live.

`open_store(url)` picks the backend from the configured URL; everything else
talks to the `ArtifactStore` interface. Signed download tokens live in
`tuneyard.storage.signing` and HTTP range responses in `tuneyard.storage.http`
(which imports Starlette, so it is not imported here).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from .base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    validate_key,
)
from .local import LocalStore
from .memory import MemoryStore

__all__ = [
    "CHUNK_SIZE",
    "ArtifactStore",
    "LocalStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectNotFound",
    "StoreUnavailable",
    "open_store",
    "validate_key",
]


def open_store(url: str) -> ArtifactStore:
    """The store a URL names: `file:///abs/dir` or a plain path, `memory://`, `s3://…`.

    Each `memory://` call returns a new, empty store. An `s3://BUCKET/PREFIX`
    store is checked on opening (one request): `StoreUnavailable` says why not.
    """
    if not url:
        raise ValueError("storage URL must not be empty")
    if "://" not in url:
        return LocalStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(
                f"file storage URL must be file:///absolute/path (no host), got {url!r}"
            )
        return LocalStore(Path(url2pathname(parts.path)))
    if scheme == "memory":
        return MemoryStore()
    if scheme == "s3":
        from .s3 import S3Store  # boto3 is imported only by those who use S3

        return S3Store.from_url(url)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r} in {url!r}")
