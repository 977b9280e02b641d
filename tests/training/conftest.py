"""Fixtures for the training tests: tiny models built offline, recording events."""

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


class RecordingEvents:
    """TrainingEvents that remember everything.

    `stop_at_poll`: should_stop answers True from that poll on. It is polled
    once per optimizer step, so the N-th poll of a run is its N-th step (a
    cancel at a known step: checkpoints are reported from the writer's thread,
    so "stop after checkpoint N is reported" would land at a step that
    depends on timing).
    """

    def __init__(self, stop_at_poll: int | None = None):
        self.percents: list[int] = []
        self.losses: list[tuple[int, float]] = []
        self.checkpoints: list[tuple[int, Path, dict]] = []
        self.stop_at_poll = stop_at_poll
        self.polls = 0

    def progress(self, percent: int) -> None:
        self.percents.append(percent)

    def loss(self, step: int, value: float) -> None:
        self.losses.append((step, value))

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        assert (path / "checkpoint.json").is_file()
        self.checkpoints.append((number, path, manifest))

    def should_stop(self) -> bool:
        self.polls += 1
        return self.stop_at_poll is not None and self.polls >= self.stop_at_poll


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture(scope="session")
def make_events():
    """The RecordingEvents class, for tests that need several or a stopping one."""
    return RecordingEvents


def letters(i: int) -> dict:
    """A learnable pattern: three letters, then the next three."""
    abc = "abcdefghijklmnopqrstuvwxyz"
    return {
        "prompt": " ".join(abc[(i + k) % 26] for k in range(3)),
        "completion": " " + " ".join(abc[(i + 3 + k) % 26] for k in range(3)),
    }


@pytest.fixture(scope="session")
def letter_data() -> tuple[list[dict], list[dict]]:
    return [letters(i) for i in range(24)], [letters(i) for i in range(0, 26, 4)]


@pytest.fixture(scope="session")
def job():
    """Build a JobSpec with resolved hyper-parameters."""
    from tuneyard.training import JobSpec, resolve_parameters

    def make(model_path, train, evaluation, task_type="text-generation", **params):
        return JobSpec(
            job_id="tr-test",
            task_type=task_type,
            base_model="tuneyard-tiny-lm",
            model_path=str(model_path),
            train_examples=train,
            eval_examples=evaluation,
            hyper_parameters=resolve_parameters(params),
        )

    return make


POSITIVE = ["great film", "loved it", "wonderful acting", "a delight", "brilliant story",
            "superb and moving", "fantastic film", "really enjoyable"]
NEGATIVE = ["awful film", "hated it", "terrible acting", "a bore", "dull story",
            "weak and tedious", "boring film", "really bad"]


@pytest.fixture(scope="session")
def sentiment() -> list[tuple[str, bool]]:
    """(text, is_positive) pairs: easy for MiniLM to separate in a few steps."""
    return [(t, True) for t in POSITIVE] + [(t, False) for t in NEGATIVE]
