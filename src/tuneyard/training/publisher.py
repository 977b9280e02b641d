"""The Trainer callback that turns a run into tuneyard checkpoints and events.

It owns the save schedule (the Trainer's own `save_strategy` is "no"): every
epoch end or every `save_steps`, plus the final step unless that was just
saved. After the Trainer writes `checkpoint-<step>/`, the callback moves its
files into a staging directory (model files on top, resume state under
`state/`), computes the eval loss, publishes it with the checkpoint protocol,
tells the worker, and removes the Trainer's folder. It also reports progress
and loss, and stops training cleanly on cancel, timeout or early stopping.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from tuneyard.training.checkpoint import STATE_DIR, publish_checkpoint, read_manifest
from tuneyard.training.job import TrainingEvents
from tuneyard.training.params import TrainingParameters

# What the Trainer writes that only resuming needs.
STATE_FILES = {"optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json"}
# A pickle of the TrainingArguments: not needed to resume (the manifest has the
# hyperparameters) and not something a downloaded model should carry.
DROPPED_FILES = {"training_args.bin"}


def is_state_file(name: str) -> bool:
    return name in STATE_FILES or name.startswith("rng_state")


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
        eval_loss: Callable[[object], float | None],
    ):
        self.events = events
        self.params = params
        self.root = Path(checkpoints_root)
        self.next_number = next_number
        self.base_model = base_model
        self.hyper_parameters = hyper_parameters
        self.extra = extra
        self.eval_loss = eval_loss
        self.stop_reason: str | None = None
        self.last_saved_step: int | None = None
        self.last_loss: float | None = None
        self.last_percent = -1
        self.published: list[int] = []
        self.best: float | None = None
        self.since_best = 0
        self.started = time.monotonic()

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
        self._progress(state)
        limit = self.params.timeout_seconds
        if self.events.should_stop():
            self.stop_reason = "cancelled"
        elif limit and time.monotonic() - self.started > limit:
            self.stop_reason = "timeout"
        if self.stop_reason:
            # Stop now and save nothing more: a cancelled job keeps what it had.
            control.should_training_stop = True
            control.should_save = False
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

    def on_save(self, args, state, control, model=None, **kwargs):
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        number = self.next_number
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{number:06d}-", dir=self.root))
        (staging / STATE_DIR).mkdir()
        for entry in sorted(source.iterdir()):
            if entry.name in DROPPED_FILES:
                continue
            target = staging / STATE_DIR if is_state_file(entry.name) else staging
            shutil.move(str(entry), str(target / entry.name))
        eval_loss = self.eval_loss(model)
        path = publish_checkpoint(
            staging_dir=staging,
            checkpoints_root=self.root,
            number=number,
            step=state.global_step,
            epoch=round(float(state.epoch or 0.0), 6),
            base_model=self.base_model,
            hyper_parameters=self.hyper_parameters,
            extra={**self.extra, "eval_loss": eval_loss, "train_loss": self.last_loss},
        )
        shutil.rmtree(source, ignore_errors=True)
        self.next_number += 1
        self.last_saved_step = state.global_step
        self.published.append(number)
        self.events.checkpoint(number, path, read_manifest(path))
        if self._no_longer_improving(eval_loss):
            self.stop_reason = "early_stopping"
            control.should_training_stop = True
        return control

    def _no_longer_improving(self, eval_loss: float | None) -> bool:
        """Early stopping on the eval loss (other metrics arrive with evaluation)."""
        patience = self.params.early_stopping_patience
        if not patience or eval_loss is None:
            return False
        if self.params.metric_for_best_model not in ("loss", "eval_loss"):
            return False
        greater = bool(self.params.greater_is_better)
        if self.best is None or (eval_loss > self.best if greater else eval_loss < self.best):
            self.best, self.since_best = eval_loss, 0
            return False
        self.since_best += 1
        return self.since_best >= patience
