"""What a training job is given and what it reports: the interface between the
worker (which owns the DB and the store) and the training child process.

Pure Python, so the worker and API can import it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TASK_TYPES = ("text-generation", "classification", "regression", "embedding")


class TrainingError(Exception):
    """A job failed for a reason the user can act on; str(e) is the message shown."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class JobSpec:
    job_id: str
    """The training job's id (tr-…), for logs."""
    task_type: str
    """text-generation | classification | regression | embedding."""
    base_model: str
    """The catalog name of the base model, recorded in every manifest."""
    model_path: str
    """The resolved base model: a local dir or cached hub id. For continued
    training, the local dir of the published checkpoint to start from (which
    may hold a LoRA adapter)."""
    train_examples: list[dict]
    """The records to train on, already chosen (split, downsampled, rebalanced: see
    tuneyard.data.choose_examples); the trainer sees every one. Task-form records:
    {prompt, completion} | {messages} (text generation), {text, labels}
    (classification), {text, value} (regression), {text1, text2, score} (embedding)."""
    eval_examples: list[dict]
    """Held-out records of the same form; their loss goes in each manifest."""
    hyper_parameters: dict
    """The output of `resolve_parameters` (every parameter resolved)."""
    labels: list[str] | None = None
    """Classification label names in id order; None derives them (sorted) from the data."""
    multi_label: bool = False
    """Classification with any number of labels per example (sigmoid/BCE)."""
    base_model_path: str | None = None
    """For continued training from a LoRA checkpoint: where its base model is
    on this machine (else as the checkpoint records it: checkpoints.reader.adapter_base)."""
    started_at: float | None = None
    """When the job started (unix seconds); timeout_seconds counts from here
    (policy.timed_out). None: from when training starts."""
    eval_loss_in_loop: bool = True
    """Compute the eval loss on the live model at every checkpoint (it goes in the
    manifest, and early stopping on `loss` uses it). The worker turns it off: its
    evaluation process computes the same loss from each published checkpoint and
    records it on the checkpoint row, so the loop holds only for the host snapshot."""
    technique: str = "SFT"
    """SFT (supervised), DPO (`train_examples` are {prompt, chosen, rejected} records)
    or GRPO (prompt/completion records; the completion is the expected output the
    reward's test functions compare a generation with)."""
    reward: dict[str, float] | None = None
    """GRPO: test function name -> weight; a completion's reward is the weighted sum."""
    functions_home: str | None = None
    """GRPO: the tuneyard home whose test_functions/ holds the administrator's functions."""


class TrainingEvents(Protocol):
    """How a running job talks to its worker.

    `progress`, `loss` and `should_stop` are called from the training thread;
    `checkpoint` from the checkpoint writer's thread, while training goes on
    (checkpoints are written in the background): one call at a time, in
    number order. An implementation must allow the two threads at once.
    """

    def progress(self, percent: int) -> None:
        """0..100, never decreasing."""

    def loss(self, step: int, value: float) -> None:
        """The mean training loss since the previous report, at each logging step."""

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        """A checkpoint was published at `path` (durable, verified by its manifest).

        An exception here fails the job (at its next step), and no later
        checkpoint is published.
        """

    def should_stop(self) -> bool:
        """Polled after every optimizer step; True stops training cleanly (cancel)."""

    # Optional: `should_pause() -> bool`, polled after `should_stop`; True publishes a
    # checkpoint at this step and stops (stop_reason "paused"), to be resumed from it.
    # Optional: `metrics(step, values)`, the trainer's other logged numbers at a
    # logging step (DPO reward accuracy and margins, GRPO mean reward); called
    # from the training thread when the events object has it.


class NullEvents:
    """Events that go nowhere: for scripts and tests that only want the files."""

    def progress(self, percent: int) -> None:
        pass

    def loss(self, step: int, value: float) -> None:
        pass

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        pass

    def should_stop(self) -> bool:
        return False
