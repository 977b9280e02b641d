"""Fixtures for storage tests: every store implementation behind one `store` fixture."""

from __future__ import annotations

import itertools

import pytest

from tuneyard.storage import ArtifactStore, LocalStore, MemoryStore

_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def s3_bucket(s3_server) -> str:
    """One bucket for the storage tests; each test gets its own prefix inside it."""
    return s3_server.new_bucket()


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ArtifactStore:
    """Each test using this runs once per implementation: one contract, three stores
    (S3 on a real SeaweedFS server, under a prefix of its own)."""
    return _open(request, request.param, tmp_path)


@pytest.fixture(params=["local", "memory"])
def served_store(request: pytest.FixtureRequest, tmp_path) -> ArtifactStore:
    """For tests of what tuneyard serves from a store (on S3 clients get presigned
    URLs instead, tested in test_s3_store.py)."""
    return _open(request, request.param, tmp_path)


def _open(request: pytest.FixtureRequest, kind: str, tmp_path) -> ArtifactStore:
    if kind == "local":
        return LocalStore(tmp_path / "store")
    if kind == "s3":
        from tuneyard.storage.s3 import S3Store

        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        return S3Store(bucket, f"contract/{next(_prefixes)}", client=server.client())
    return MemoryStore()
