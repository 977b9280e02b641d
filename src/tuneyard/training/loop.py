"""Running a prepared Trainer to the end: resume, publish, summarise.

Recipes build the model, data and Trainer; `fit` is what they share. It
routes the Trainer's checkpoint saves to the publisher's snapshots and, when
training ends for whatever reason, waits for the checkpoints still being
written in the background: the final one, or the last one before a cancel,
is published before `run_job` returns (a write that fails fails the job).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneyard.checkpoints import STATE_DIR
from tuneyard.checkpoints.reader import has_state, read_manifest, verify_checkpoint
from tuneyard.training.job import TrainingError, TrainingEvents
from tuneyard.training.params import TrainingParameters
from tuneyard.training.writer import MAX_IN_FLIGHT


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
    max_in_flight: int = MAX_IN_FLIGHT
    """Checkpoints being written in the background at once (each holds a host snapshot)."""
    started_at: float | None = None
    """When the job started (unix seconds): its timeout counts from here."""
    eval_loss_in_loop: bool = True
    """Whether the loop computes the eval loss (JobSpec.eval_loss_in_loop)."""

    def loop_eval_loss(self, eval_loss):
        """`eval_loss` when the loop computes it, else None (nothing to compute)."""
        return eval_loss if self.eval_loss_in_loop else None

    def initial_eval_loss(self, eval_loss, model) -> float | None:
        """The loss before training (not on resume: the weights load later)."""
        if self.resume_from is not None or not self.eval_loss_in_loop:
            return None
        return eval_loss(model)

    @property
    def checkpoints_root(self) -> Path:
        return self.workdir / "checkpoints"

    @property
    def trainer_dir(self) -> Path:
        """The Trainer's own output folder: transient, emptied as checkpoints publish."""
        return self.workdir / "trainer"

    def publisher(self, *, extra: dict, eval_loss, save_model):
        from tuneyard.training.publisher import CheckpointPublisher

        return CheckpointPublisher(
            events=self.events,
            params=self.params,
            checkpoints_root=self.checkpoints_root,
            next_number=self.next_number,
            base_model=self.base_model,
            hyper_parameters=self.hyper_parameters,
            extra={"task_type": self.task_type, "job_id": self.job_id, **extra},
            eval_loss=self.loop_eval_loss(eval_loss),
            save_model=save_model,
            max_in_flight=self.max_in_flight,
            started_at=self.started_at,
        )


def pretrained_saver(tokenizer):
    """A publisher `save_model` for transformers/PEFT models: what Trainer._save
    wrote (save_pretrained, then the tokenizer), minus training_args.bin.

    The writer thread uses its own copy of the tokenizer: a fast tokenizer
    must not be used from two threads at once.
    """
    import copy

    tokenizer = copy.deepcopy(tokenizer)

    def save_model(model, directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    return save_model


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
    if not has_state(manifest):
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

    from tuneyard.training.metrics_report import MetricsReport
    from tuneyard.training.publisher import route_saves

    # It prints every log dict to stdout; the worker gets losses through events.
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(MetricsReport(ctx.events))  # the learning-rate curve, and more
    route_saves(trainer, publisher)
    resume_dir = ctx.workdir / "resume"
    folder = None
    if ctx.resume_from is not None:
        folder = trainer_folder(Path(ctx.resume_from), resume_dir)
    try:
        trainer.train(resume_from_checkpoint=str(folder) if folder else None)
    except BaseException:
        # Snapshots already taken are consistent states: they still publish,
        # unless the writer itself failed. The training error is the one raised.
        publisher.finish(raise_failure=False)
        raise
    else:
        publisher.finish()
    finally:
        shutil.rmtree(resume_dir, ignore_errors=True)
        shutil.rmtree(ctx.trainer_dir, ignore_errors=True)
    stopped = publisher.stop_reason in ("cancelled", "timeout", "paused")
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
        "checkpoint_timings": list(publisher.timings),
    }


def resumed_manifest(ctx: RunContext) -> dict | None:
    return read_manifest(ctx.resume_from) if ctx.resume_from is not None else None


def fit_pretrained(ctx: RunContext, *, model, tokenizer, train_features, collate,
                   extra: dict, eval_loss) -> dict:
    """Train a transformers model with the HF Trainer, publishing through `ctx`.

    The shared tail of the text-generation and sequence recipes.
    """
    from transformers import Trainer

    from tuneyard.training.runtime import trainer_arguments

    publisher = ctx.publisher(extra=extra, eval_loss=eval_loss,
                              save_model=pretrained_saver(tokenizer))
    trainer = Trainer(
        model=model,
        args=trainer_arguments(ctx.params, output_dir=ctx.trainer_dir),
        train_dataset=train_features,
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=[publisher],
    )
    # After Trainer placed the model on its device; a resumed run starts from
    # weights the Trainer loads later, so its "initial" loss means nothing.
    initial = ctx.initial_eval_loss(eval_loss, trainer.model)
    return fit(trainer, publisher, ctx, initial_eval_loss=initial)
