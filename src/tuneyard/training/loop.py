"""Running a prepared Trainer to the end: resume, publish, summarise.

Recipes build the model, data and Trainer; `fit` is what they share.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneyard.training.checkpoint import STATE_DIR, read_manifest, verify_checkpoint
from tuneyard.training.job import TrainingError, TrainingEvents
from tuneyard.training.params import TrainingParameters


@dataclass
class RunContext:
    """Everything about a run that is not the model or the data."""

    job_id: str
    task_type: str
    base_model: str
    hyper_parameters: dict
    params: TrainingParameters
    workdir: Path
    events: TrainingEvents
    resume_from: Path | None
    next_number: int

    @property
    def checkpoints_root(self) -> Path:
        return self.workdir / "checkpoints"

    @property
    def trainer_dir(self) -> Path:
        """The Trainer's own output folder: transient, emptied as checkpoints publish."""
        return self.workdir / "trainer"

    def publisher(self, *, extra: dict, eval_loss):
        from tuneyard.training.publisher import CheckpointPublisher

        return CheckpointPublisher(
            events=self.events,
            params=self.params,
            checkpoints_root=self.checkpoints_root,
            next_number=self.next_number,
            base_model=self.base_model,
            hyper_parameters=self.hyper_parameters,
            extra={"task_type": self.task_type, "job_id": self.job_id, **extra},
            eval_loss=eval_loss,
        )


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same disk: free, and the checkpoint is never modified
    except OSError:
        shutil.copy2(src, dst)


def trainer_folder(checkpoint: Path, dest_root: Path) -> Path:
    """Rebuild the Trainer's `checkpoint-<step>/` layout from a published checkpoint."""
    try:
        manifest = verify_checkpoint(checkpoint)
    except Exception as exc:
        raise TrainingError(f"cannot resume from {checkpoint}: {exc}") from exc
    if not any(rel.startswith(STATE_DIR + "/") for rel in manifest["files"]):
        raise TrainingError(f"cannot resume from {checkpoint}: it has no training state")
    folder = Path(dest_root) / f"checkpoint-{manifest['step']}"
    shutil.rmtree(folder, ignore_errors=True)
    for rel in manifest["files"]:
        target = rel.removeprefix(STATE_DIR + "/")
        _link_or_copy(Path(checkpoint) / rel, folder / target)
    return folder


def fit(trainer, publisher, ctx: RunContext, *, initial_eval_loss: float | None) -> dict:
    """Train (resuming if asked), then return the run's summary."""
    from transformers.trainer_callback import PrinterCallback

    # It prints every log dict to stdout; the worker gets losses through events.
    trainer.remove_callback(PrinterCallback)
    resume_dir = ctx.workdir / "resume"
    folder = None
    if ctx.resume_from is not None:
        folder = trainer_folder(Path(ctx.resume_from), resume_dir)
    try:
        trainer.train(resume_from_checkpoint=str(folder) if folder else None)
    finally:
        shutil.rmtree(resume_dir, ignore_errors=True)
        shutil.rmtree(ctx.trainer_dir, ignore_errors=True)
    stopped = publisher.stop_reason in ("cancelled", "timeout")
    if not stopped and publisher.last_percent < 100:
        ctx.events.progress(100)  # e.g. early stopping: the job is done
    return {
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": float(trainer.state.epoch or 0.0),
        "final_loss": publisher.last_loss,
        "stopped": stopped,
        "stop_reason": publisher.stop_reason,
        "checkpoints": list(publisher.published),
        "initial_eval_loss": initial_eval_loss,
    }


def resumed_manifest(ctx: RunContext) -> dict | None:
    return read_manifest(ctx.resume_from) if ctx.resume_from is not None else None
