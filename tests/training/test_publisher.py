"""The publisher's save schedule and stopping rules, driven without a Trainer."""

import time

import pytest
from transformers import TrainerControl, TrainerState

from tuneyard.training import NullEvents, resolve_parameters
from tuneyard.training.params import TrainingParameters
from tuneyard.training.publisher import CheckpointPublisher


class Events(NullEvents):
    def __init__(self, stop=False):
        self.stop = stop
        self.percents = []

    def progress(self, percent):
        self.percents.append(percent)

    def should_stop(self):
        return self.stop


def _publisher(tmp_path, events=None, **params):
    return CheckpointPublisher(
        events=events or Events(), params=TrainingParameters(**resolve_parameters(params)),
        checkpoints_root=tmp_path, next_number=1, base_model="m", hyper_parameters={},
        extra={}, eval_loss=lambda model: None, save_model=lambda model, directory: None,
    )


def _step(pub, state, control, step):
    state.global_step = step
    control.should_save = False
    pub.on_step_end(None, state, control)
    return control.should_save


def test_steps_schedule_saves_multiples_and_the_last_step(tmp_path):
    pub = _publisher(tmp_path, save_strategy="steps", save_steps=4)
    state, control = TrainerState(max_steps=10), TrainerControl()
    pub.on_train_begin(None, state, control)
    saved = [s for s in range(1, 11) if _step(pub, state, control, s)]
    assert saved == [4, 8, 10]


def test_epoch_schedule_skips_a_step_already_saved(tmp_path):
    pub = _publisher(tmp_path)
    state, control = TrainerState(max_steps=6), TrainerControl()
    pub.on_train_begin(None, state, control)
    assert not _step(pub, state, control, 3)
    pub.on_epoch_end(None, state, control)
    assert control.should_save
    pub.last_saved_step = 3  # what on_save records
    assert _step(pub, state, control, 6)  # the final step saves at once...
    pub.last_saved_step = 6
    control.should_save = False
    pub.on_epoch_end(None, state, control)
    assert not control.should_save  # ...and the epoch end does not save it twice


def test_cancel_stops_without_saving_and_progress_is_monotonic(tmp_path):
    events = Events()
    pub = _publisher(tmp_path, events)
    state, control = TrainerState(max_steps=4, global_step=1), TrainerControl()
    pub.on_train_begin(None, state, control)  # a resumed run starts at its step
    assert events.percents == [25]
    _step(pub, state, control, 2)
    events.stop = True
    assert not _step(pub, state, control, 4)
    assert control.should_training_stop and pub.stop_reason == "cancelled"
    pub.on_epoch_end(None, state, control)
    assert not control.should_save
    assert events.percents == [25, 50, 100]


def test_timeout_stops_cleanly(tmp_path):
    pub = _publisher(tmp_path, timeout_seconds=5)
    state, control = TrainerState(max_steps=100), TrainerControl()
    _step(pub, state, control, 1)
    assert pub.stop_reason is None
    pub.started_at = time.time() - 6
    _step(pub, state, control, 2)
    assert pub.stop_reason == "timeout" and control.should_training_stop


@pytest.mark.parametrize(
    ("params", "losses", "stops_at"),
    [
        ({"early_stopping_patience": 2}, [3.0, 2.0, 2.5, 2.1, 1.0], 4),
        ({"early_stopping_patience": 1}, [3.0, 2.0, 1.0, 1.0], 4),
        ({"early_stopping_patience": 0}, [3.0, 4.0, 5.0], None),
        ({"early_stopping_patience": 1, "greater_is_better": True}, [1.0, 2.0, 1.5], 3),
        ({"early_stopping_patience": 1, "metric_for_best_model": "accuracy"}, [1.0, 2.0], None),
    ],
)
def test_early_stopping_on_eval_loss(tmp_path, params, losses, stops_at):
    pub = _publisher(tmp_path, **params)
    stopped = [i for i, loss in enumerate(losses, 1) if pub._no_longer_improving(loss)]
    assert (stopped[0] if stopped else None) == stops_at


def test_without_the_eval_loss_in_the_loop_nothing_computes_it(tmp_path):
    """The worker's jobs (JobSpec.eval_loss_in_loop=False): the loop holds only for the
    snapshot; the evaluation process records the loss from the published checkpoint."""
    from tuneyard.training.loop import RunContext

    def boom(model):
        raise AssertionError("the eval loss was computed in the loop")

    params = TrainingParameters(**resolve_parameters({}))
    ctx = RunContext(job_id="tr-1", task_type="text-generation", base_model="m",
                     hyper_parameters={}, params=params, workdir=tmp_path, events=Events(),
                     resume_from=None, next_number=1, eval_loss_in_loop=False)
    publisher = ctx.publisher(extra={}, eval_loss=boom, save_model=lambda m, d: None)
    assert publisher.eval_loss is None
    assert ctx.initial_eval_loss(boom, model=None) is None
    in_loop = RunContext(**{**ctx.__dict__, "eval_loss_in_loop": True})
    assert in_loop.publisher(extra={}, eval_loss=boom, save_model=lambda m, d: None).eval_loss \
        is boom
