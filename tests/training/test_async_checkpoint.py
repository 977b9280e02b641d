"""Checkpoints written in the background on the tiny LM: the loop does not wait
for the write, back-pressure bounds what is in flight, failures fail the job,
a cancel publishes the checkpoint in flight, numbers report in order, and a
process killed mid-write leaves nothing that looks like a checkpoint.

Assertions are about order (what happened before what, recorded from the
training thread by a TrainerCallback and from the writer's thread by the
events), never about how long something took.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from transformers import TrainerCallback

import tuneyard.training.loop as training_loop
import tuneyard.training.publisher as publisher_module
from tuneyard.checkpoints.reader import checkpoint_dir, list_published, verify_checkpoint
from tuneyard.training import TrainingError, run_job

from .conftest import RecordingEvents

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]

PARAMS = {"num_train_epochs": 2, "learning_rate": 0.003, "per_device_train_batch_size": 8,
          "logging_steps": 1, "seed": 7}  # 24 examples: 3 steps an epoch, 6 in all
WAIT = 10.0  # how long a test waits for something that must happen (a deadlock guard)


class Timeline(TrainerCallback):
    """What the training thread did, in order: step begins, checkpoints taken."""

    def __init__(self, log: list):
        self.log = log
        self.began = {step: threading.Event() for step in range(1, 100)}
        self.captured = {n: threading.Event() for n in range(1, 100)}
        self.saves = 0

    def on_step_begin(self, args, state, control, **kwargs):
        step = state.global_step + 1
        self.log.append(("step", step, time.monotonic()))
        self.began[step].set()

    def on_save(self, args, state, control, **kwargs):
        # The Trainer calls on_save right after its checkpoint save, which is
        # now only the snapshot (and the eval loss).
        self.saves += 1
        self.log.append(("captured", self.saves, time.monotonic()))
        self.captured[self.saves].set()


@pytest.fixture
def timeline(monkeypatch):
    """A Timeline callback added to the Trainer that run_job builds."""
    log: list = []
    callback = Timeline(log)
    real_fit = training_loop.fit

    def fit(trainer, publisher, ctx, **kwargs):
        trainer.add_callback(callback)
        return real_fit(trainer, publisher, ctx, **kwargs)

    monkeypatch.setattr(training_loop, "fit", fit)
    return callback


def _run(job, tiny_lm, letter_data, workdir, events, **params):
    train, evaluation = letter_data
    limit = params.pop("checkpoints_in_flight", None)
    return run_job(job(tiny_lm, train, evaluation, **{**PARAMS, **params}),
                   workdir=workdir, events=events, checkpoints_in_flight=limit)


def _no_leftovers(workdir):
    root = workdir / "checkpoints"
    assert [p.name for p in root.iterdir() if not p.name.isdigit()] == []
    assert not (workdir / "trainer").exists()


def test_the_step_after_a_checkpoint_does_not_wait_for_its_write(
    tmp_path, tiny_lm, letter_data, job, timeline
):
    class SlowEvents(RecordingEvents):
        """Reporting checkpoint 1 takes up to 2 s: it returns early only once step 4
        (the step after checkpoint 1, at step 3) has begun."""

        saw_next_step = None

        def checkpoint(self, number, path, manifest):
            timeline.log.append(("reporting", number, time.monotonic()))
            if number == 1:
                self.saw_next_step = timeline.began[4].wait(timeout=2.0)
            super().checkpoint(number, path, manifest)
            timeline.log.append(("reported", number, time.monotonic()))

    events = SlowEvents()
    summary = _run(job, tiny_lm, letter_data, tmp_path, events)
    assert summary["steps"] == 6 and summary["checkpoints"] == [1, 2]
    assert [n for n, _, _ in events.checkpoints] == [1, 2]
    # Training went on while checkpoint 1 was being reported: with a
    # synchronous save step 4 could only begin after the report returned.
    assert events.saw_next_step is True
    order = [(kind, n) for kind, n, _ in timeline.log]
    assert order.index(("step", 4)) < order.index(("reported", 1))
    assert order.index(("captured", 1)) < order.index(("step", 4))
    _no_leftovers(tmp_path)
    for number, path, manifest in events.checkpoints:
        assert verify_checkpoint(path)["number"] == number
        assert manifest["step"] == 3 * number


@pytest.mark.parametrize("limit", [1, 2])
def test_back_pressure_bounds_the_checkpoints_in_flight(
    limit, tmp_path, tiny_lm, letter_data, job, timeline
):
    class Events(RecordingEvents):
        def checkpoint(self, number, path, manifest):
            if number == 1:
                # Hold checkpoint 1 until the loop has taken every snapshot the
                # limit allows (for limit 1, that is checkpoint 1 itself).
                assert timeline.captured[limit].wait(WAIT)
                time.sleep(0.2)  # ... and a little longer: the loop is due again meanwhile
            super().checkpoint(number, path, manifest)
            timeline.log.append(("reported", number, time.monotonic()))

    events = Events()
    summary = _run(job, tiny_lm, letter_data, tmp_path, events, save_strategy="steps",
                   save_steps=1, checkpoints_in_flight=limit)
    assert summary["steps"] == 6
    numbers = [n for n, _, _ in events.checkpoints]
    assert numbers == summary["checkpoints"] == list_published(tmp_path / "checkpoints")
    assert numbers == [1, 2, 3, 4, 5, 6]  # contiguous, reported in order
    in_flight, most = 0, 0
    for kind, _, _ in timeline.log:
        in_flight += {"captured": 1, "reported": -1}.get(kind, 0)
        most = max(most, in_flight)
    assert most == limit  # reached, never exceeded
    order = [(kind, n) for kind, n, _ in timeline.log]
    for number in range(limit + 1, 7):
        # A snapshot beyond the limit is taken only once an earlier one is done.
        assert order.index(("reported", number - limit)) < order.index(("captured", number))
    assert [t["number"] for t in summary["checkpoint_timings"]] == numbers
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("where", ["write", "report"])
def test_a_failing_background_write_fails_the_job_clearly(
    where, tmp_path, tiny_lm, letter_data, job, monkeypatch
):
    seen_while_writing = []

    if where == "write":
        real_publish = publisher_module.publish_checkpoint

        def publish_checkpoint(*, staging_dir, checkpoints_root, number, **kwargs):
            if number == 2:
                # Files are written, the manifest is not: nothing of 2 is visible.
                seen_while_writing.append((list_published(checkpoints_root),
                                           staging_dir.name, any(staging_dir.iterdir())))
                raise OSError(28, "No space left on device")
            return real_publish(staging_dir=staging_dir, checkpoints_root=checkpoints_root,
                                number=number, **kwargs)

        monkeypatch.setattr(publisher_module, "publish_checkpoint", publish_checkpoint)
        events = RecordingEvents()
        message = r"checkpoint 2 could not be saved: OSError: \[Errno 28\] No space left on device"
    else:
        class Events(RecordingEvents):
            def checkpoint(self, number, path, manifest):
                if number == 2:
                    raise ConnectionError("the artifact store is unreachable")
                super().checkpoint(number, path, manifest)

        events = Events()
        message = ("checkpoint 2 could not be saved: "
                   "ConnectionError: the artifact store is unreachable")

    with pytest.raises(TrainingError, match=f"^{message}$"):
        _run(job, tiny_lm, letter_data, tmp_path, events, num_train_epochs=4)  # 12 steps
    assert [n for n, _, _ in events.checkpoints] == [1]
    # Noticed at the next step, or at the latest when checkpoint 3 (step 9)
    # waits for the slot 2 held: the job does not train to its end.
    assert events.polls <= 9
    _no_leftovers(tmp_path)
    if where == "write":
        assert list_published(tmp_path / "checkpoints") == [1]
        assert seen_while_writing == [([1], seen_while_writing[0][1], True)]
        assert seen_while_writing[0][1].startswith(".staging-000002-")
    else:  # published on disk but never reported: the worker never recorded it
        assert list_published(tmp_path / "checkpoints") == [1, 2]


def test_a_cancel_publishes_the_checkpoint_in_flight(
    tmp_path, tiny_lm, letter_data, job, timeline
):
    class Events(RecordingEvents):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.cancelled = threading.Event()
            self.in_flight_at_cancel = None

        def should_stop(self):
            stop = super().should_stop()
            if stop:
                self.cancelled.set()
            return stop

        def checkpoint(self, number, path, manifest):
            # Checkpoint 1 is still being written when the loop decides to stop.
            self.in_flight_at_cancel = self.cancelled.wait(WAIT)
            super().checkpoint(number, path, manifest)

    events = Events(stop_at_poll=4)  # cancelled at step 4, checkpoint 1 was at step 3
    summary = _run(job, tiny_lm, letter_data, tmp_path, events)
    assert events.in_flight_at_cancel is True
    assert summary["stopped"] is True and summary["stop_reason"] == "cancelled"
    assert summary["steps"] == 4
    # run_job returned only after checkpoint 1 was published and reported.
    assert summary["checkpoints"] == [1] and [n for n, _, _ in events.checkpoints] == [1]
    assert list_published(tmp_path / "checkpoints") == [1]
    verify_checkpoint(tmp_path / "checkpoints" / "000001")
    _no_leftovers(tmp_path)


def test_snapshot_memory_is_accounted_and_lora_copies_only_the_adapter(
    tmp_path, tiny_lm, letter_data, job
):
    from transformers import AutoModelForCausalLM

    weights = sum(p.numel() * p.element_size()
                  for p in AutoModelForCausalLM.from_pretrained(tiny_lm).parameters())
    full = _run(job, tiny_lm, letter_data, tmp_path / "full", RecordingEvents(),
                num_train_epochs=1)
    lora = _run(job, tiny_lm, letter_data, tmp_path / "lora", RecordingEvents(),
                num_train_epochs=1, use_lora=True, learning_rate=0.02)
    (full_timing,), (lora_timing,) = full["checkpoint_timings"], lora["checkpoint_timings"]
    # Full: the weights and AdamW's two moments per weight, copied.
    assert full_timing["snapshot_bytes"] >= 3 * weights
    # LoRA: the frozen base is shared with the live model, not copied (a copy
    # alone would be `weights`); the adapter and its moments are.
    assert 0 < lora_timing["snapshot_bytes"] < weights
    for timing in (full_timing, lora_timing):
        assert {"wait_s", "snapshot_s", "eval_s", "blocked_s"} <= set(timing)


CRASH = """
import json, os, signal, sys
from pathlib import Path
import tuneyard.training.publisher as publisher
from tuneyard.training import JobSpec, NullEvents, resolve_parameters, run_job

model, workdir, data = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
real = publisher.publish_checkpoint

def publish_checkpoint(*, staging_dir, number, **kwargs):
    if number == 2:  # every file of checkpoint 2 written, its manifest not yet: die
        os.kill(os.getpid(), signal.SIGKILL)
    return real(staging_dir=staging_dir, number=number, **kwargs)

publisher.publish_checkpoint = publish_checkpoint
spec = JobSpec(job_id="tr-crash", task_type="text-generation", base_model="tuneyard-tiny-lm",
               model_path=model, train_examples=data["train"], eval_examples=data["eval"],
               hyper_parameters=resolve_parameters(data["params"]))
run_job(spec, workdir=workdir, events=NullEvents())
"""


def test_a_crash_mid_write_leaves_no_visible_checkpoint(
    tmp_path, tiny_lm, letter_data, job, make_events
):
    train, evaluation = letter_data
    data = {"train": train, "eval": evaluation, "params": PARAMS}
    child = subprocess.run(
        [sys.executable, "-c", CRASH, str(tiny_lm), str(tmp_path), json.dumps(data)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    root = tmp_path / "checkpoints"
    assert list_published(root) == [1]  # 2 is not a checkpoint...
    (staging,) = [p for p in root.iterdir() if p.name.startswith(".staging-000002-")]
    assert any(staging.rglob("*.safetensors")) and not (staging / "checkpoint.json").exists()
    # ...and the next attempt removes its files, resumes from 1 and publishes 2 whole.
    events = make_events()
    summary = run_job(job(tiny_lm, train, evaluation, **PARAMS), workdir=tmp_path,
                      events=events, resume_from=checkpoint_dir(root, 1), next_number=2)
    assert summary["checkpoints"] == [2] and list_published(root) == [1, 2]
    assert not staging.exists()
    verify_checkpoint(checkpoint_dir(root, 2))
