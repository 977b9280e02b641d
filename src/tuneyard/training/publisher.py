"""The Trainer callback that turns a run into tuneyard checkpoints and events.

It owns the save schedule (the Trainer's own `save_strategy` is "no"): every
epoch end or every `save_steps`, plus the final step unless that was just
saved. When a checkpoint is due, the Trainer's `_save_checkpoint` is routed
to `save` (see `route_saves`): the loop copies the state into host memory
(snapshot.py), hands the copy to the background writer (writer.py), computes
the eval loss on the live model and goes on training. On the writer's
thread the copy is written into a staging directory (model files on top,
resume state under `state/`), published with the checkpoint protocol
(manifest last, rename) and only then reported with `events.checkpoint`.

The callback also reports progress and loss, and stops training cleanly on
cancel, timeout or early stopping.

The eval loss: a job run by the worker does not compute it in the loop
(JobSpec.eval_loss_in_loop is off). Its evaluation process, which runs beside
training anyway, computes the same loss from each published checkpoint and
records it on the checkpoint's row, where the listing and the training curve
read it; early stopping on `loss` is applied there too (services.retention).
The loop then holds only for the snapshot (a few ms against seconds of
forward passes over the eval set on a CPU). Run on its own (scripts, tests),
the loop still computes it on the live model and writes it in the manifest;
the writer overlaps with it (the snapshot is submitted first, and the writer
waits for the loss only when it writes the manifest).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tuneyard import policy
from tuneyard.checkpoints import STATE_DIR
from tuneyard.checkpoints.reader import read_manifest
from tuneyard.checkpoints.writer import publish_checkpoint
from tuneyard.training.job import TrainingEvents
from tuneyard.training.params import TrainingParameters
from tuneyard.training.snapshot import BeforeOptimizerStep, HostSlot, Snapshot, write_snapshot
from tuneyard.training.writer import MAX_IN_FLIGHT, CheckpointWriter, run_nicer

log = logging.getLogger("tuneyard.training")


def route_saves(trainer, publisher: CheckpointPublisher) -> None:
    """Make `trainer` snapshot its checkpoints through `publisher` instead of
    writing them itself (the Trainer calls `_save_checkpoint` when a callback
    sets `should_save`, then `on_save`)."""
    if not callable(getattr(trainer, "_save_checkpoint", None)):
        raise RuntimeError("this transformers Trainer has no _save_checkpoint to route")

    def _save_checkpoint(model, trial=None):
        publisher.save(trainer)

    trainer._save_checkpoint = _save_checkpoint


class _Publication:
    """One checkpoint's work on the writer thread (a writer.WriteJob)."""

    def __init__(self, publisher: CheckpointPublisher, *, number: int, slot: HostSlot,
                 snapshot: Snapshot, eval_loss: Future, train_loss: float | None):
        self.publisher = publisher
        self.number = number
        self.slot = slot
        self.snapshot = snapshot
        self.eval_loss = eval_loss
        self.train_loss = train_loss
        self.staging: Path | None = None

    def run(self) -> None:
        # The host copy first, at the loop's priority (its next optimizer step may
        # wait for it); serialising, hashing and storing at a lower one (run_nicer).
        self.snapshot.wait()
        run_nicer(self._write)

    def _write(self) -> None:
        pub = self.publisher
        self.staging = Path(tempfile.mkdtemp(prefix=f".staging-{self.number:06d}-", dir=pub.root))
        (self.staging / STATE_DIR).mkdir()
        write_snapshot(self.snapshot, self.staging, pub.save_model)
        path = publish_checkpoint(
            staging_dir=self.staging,
            checkpoints_root=pub.root,
            number=self.number,
            step=self.snapshot.step,
            epoch=self.snapshot.epoch,
            base_model=pub.base_model,
            hyper_parameters=pub.hyper_parameters,
            extra={**pub.extra, "eval_loss": self.eval_loss.result(),
                   "train_loss": self.train_loss},
        )
        self.staging = None  # renamed: published
        pub.published.append(self.number)
        pub.events.checkpoint(self.number, path, read_manifest(path))

    def discard(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


class CheckpointPublisher(TrainerCallback):
    def __init__(
        self,
        *,
        events: TrainingEvents,
        params: TrainingParameters,
        checkpoints_root: Path,
        next_number: int,
        base_model: str,
        hyper_parameters: dict,
        extra: dict,
        eval_loss: Callable[[object], float | None] | None,
        save_model: Callable[[Any, Path], None],
        max_in_flight: int = MAX_IN_FLIGHT,
        started_at: float | None = None,
    ):
        self.events = events
        self.params = params
        self.root = Path(checkpoints_root)
        self.next_number = next_number
        self.base_model = base_model
        self.hyper_parameters = hyper_parameters
        self.extra = extra
        self.eval_loss = eval_loss
        """The eval loss of the live model, or None: not computed in the loop."""
        self.save_model = save_model
        """Writes a model (the snapshot's shadow) into a directory, from_pretrained-loadable."""
        self.writer = CheckpointWriter(limit=max_in_flight)
        self.before_step = BeforeOptimizerStep()
        self.timings: list[dict] = []
        """Per checkpoint: how long the loop was held and how much host memory the snapshot took."""
        self.stop_reason: str | None = None
        self.last_saved_step: int | None = None
        self.last_loss: float | None = None
        self.last_percent = -1
        self.published: list[int] = []
        self.eval_losses: list[float] = []
        """The eval loss of each checkpoint of this run, in order (early stopping)."""
        self.started_at = started_at if started_at is not None else time.time()
        """When the job started (unix seconds): its timeout counts from here."""

    # -- progress, loss, stopping ------------------------------------------------

    def _progress(self, state) -> None:
        if state.max_steps <= 0:
            return
        percent = min(100, int(state.global_step * 100 / state.max_steps))
        if percent > self.last_percent:
            self.last_percent = percent
            self.events.progress(percent)

    def on_train_begin(self, args, state, control, **kwargs):
        # On resume the state is already restored: a resumed job never goes back.
        self.last_saved_step = state.global_step if state.global_step else None
        self._progress(state)

    def on_step_end(self, args, state, control, **kwargs):
        self.writer.check()  # a failed background write fails the job at the next step
        self._progress(state)
        if self.events.should_stop():
            self.stop_reason = "cancelled"
        elif policy.timed_out(timeout_seconds=self.params.timeout_seconds,
                              started_at=self.started_at, now=time.time()):
            self.stop_reason = "timeout"
        if self.stop_reason:
            # Stop now and save nothing more: a cancelled job keeps what it had.
            control.should_training_stop = True
            control.should_save = False
            control.should_log = True
            return control
        should_pause = getattr(self.events, "should_pause", None)
        if should_pause is not None and should_pause():
            # Pause: checkpoint this step (unless it was just saved) and stop; resuming
            # continues from that checkpoint with the same step count and numbering.
            self.stop_reason = "paused"
            control.should_training_stop = True
            control.should_save = state.global_step != self.last_saved_step
            control.should_log = True
            return control
        if self.params.save_strategy == "steps" and state.global_step % self.params.save_steps == 0:
            control.should_save = True
        if state.global_step >= state.max_steps:
            control.should_save = True
            control.should_log = True  # the last loss is reported too
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stop_reason:
            control.should_save = False
        elif self.params.save_strategy == "epoch" and state.global_step != self.last_saved_step:
            control.should_save = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and math.isfinite(logs["loss"]):
            self.last_loss = float(logs["loss"])
            self.events.loss(state.global_step, self.last_loss)

    # -- publishing ----------------------------------------------------------------

    def save(self, trainer) -> None:
        """Checkpoint `trainer` at its current step; the loop waits only for the
        snapshot (and for a free slot when the limit is in flight) and the eval loss."""
        began = time.perf_counter()
        slot = self.writer.acquire()
        acquired = time.perf_counter()
        try:
            snapshot = slot.capture(trainer)
        except BaseException:
            self.writer.release(slot)
            raise
        captured = time.perf_counter()
        number = self.next_number
        eval_loss: Future = Future()
        timing = {"number": number, "step": snapshot.step, "snapshot_bytes": snapshot.nbytes,
                  "wait_s": acquired - began, "snapshot_s": captured - acquired,
                  "eval_s": 0.0, "deferred_wait_s": 0.0}
        self.timings.append(timing)
        if not snapshot.deferred.done:
            self.before_step.add(trainer.optimizer, snapshot.deferred,
                                 lambda seconds: self._held(timing, seconds))
        self.writer.submit(_Publication(self, number=number, slot=slot, snapshot=snapshot,
                                        eval_loss=eval_loss, train_loss=self.last_loss))
        self.next_number += 1
        self.last_saved_step = snapshot.step
        try:
            value = self.eval_loss(trainer.model) if self.eval_loss is not None else None
        except BaseException as exc:
            eval_loss.set_exception(exc)  # the writer discards the checkpoint
            raise
        eval_loss.set_result(value)
        timing["eval_s"] = time.perf_counter() - captured
        timing["blocked_s"] = time.perf_counter() - began
        log.info(
            "checkpoint %d (step %d): snapshot of %.1f MiB in host memory (at most %d in "
            "flight); loop held %.3f s: %.3f s waiting for a slot, %.3f s copying, "
            "%.3f s eval loss", number, snapshot.step, snapshot.nbytes / 2**20,
            self.writer.limit, timing["blocked_s"], timing["wait_s"], timing["snapshot_s"],
            timing["eval_s"],
        )
        if self._no_longer_improving(value):
            self.stop_reason = "early_stopping"

    @staticmethod
    def _held(timing: dict, seconds: float) -> None:
        """The next optimizer step waited `seconds` for the deferred copy."""
        timing["deferred_wait_s"] = seconds
        timing["blocked_s"] = timing.get("blocked_s", 0.0) + seconds
        if seconds >= 0.01:
            log.info("checkpoint %d: the next optimizer step waited %.3f s for the host copy",
                     timing["number"], seconds)

    def on_save(self, args, state, control, **kwargs):
        if self.stop_reason == "early_stopping":
            control.should_training_stop = True
        return control

    def finish(self, *, raise_failure: bool = True) -> None:
        """Wait for every checkpoint in flight to publish (the final one, or the
        last one before a cancel); raise a background failure if asked."""
        self.before_step.close()
        self.writer.close(raise_failure=raise_failure)

    def _no_longer_improving(self, eval_loss: float | None) -> bool:
        """Early stopping (policy.stop_early) on the eval loss, when the loss is the
        job's metric; other metrics arrive with evaluation, which applies the same rule."""
        rank = policy.ranking(metric_for_best_model=self.params.metric_for_best_model,
                              greater=self.params.greater_is_better)
        if rank.metric != "loss" or eval_loss is None:
            return False
        self.eval_losses.append(eval_loss)
        return policy.stop_early(self.eval_losses, patience=self.params.early_stopping_patience,
                                 greater=rank.greater)
