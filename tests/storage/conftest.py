"""Fixtures for storage tests: every store implementation behind one `store` fixture."""

from __future__ import annotations

import pytest

from tuneyard.storage import ArtifactStore, LocalStore, MemoryStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path) -> ArtifactStore:
    """Each test using this runs once per implementation: one contract, two stores."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return MemoryStore()
