"""The trainer's logged numbers beyond the loss, handed to the job's events.

At each logging step the HF Trainer (and TRL's trainers) log the learning rate
and gradient norm, and DPO/GRPO their reward accuracy, margins and mean reward;
`events.metrics` (optional in the events protocol) keeps them per step, for the
job's `training_metrics` and the dashboard's learning-rate curve.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

# Logged numbers that are not per-step metrics (end-of-run summaries) or are
# reported on their own (the loss).
_NOT_METRICS = ("loss", "epoch", "total_flos")


class MetricsReport(TrainerCallback):
    """Hands each logging step's numbers beyond the loss (learning rate, gradient norm;
    DPO reward accuracy and margins, GRPO mean reward) to `events.metrics`."""

    def __init__(self, events):
        self.report = getattr(events, "metrics", None)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.report is None or not logs:
            return
        values = {k: float(v) for k, v in logs.items()
                  if k not in _NOT_METRICS and not k.startswith("train_")
                  and isinstance(v, int | float) and not isinstance(v, bool)
                  and math.isfinite(v)}
        if values:
            self.report(state.global_step, values)
