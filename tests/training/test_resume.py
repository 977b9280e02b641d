"""Cancel, resume and continued training on the tiny LM."""

import pytest

from tuneyard.checkpoints.reader import checkpoint_dir, list_published
from tuneyard.training import run_job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]

PARAMS = {"num_train_epochs": 3, "learning_rate": 0.003, "per_device_train_batch_size": 8,
          "logging_steps": 1, "seed": 7}
LORA = {**PARAMS, "use_lora": True, "learning_rate": 0.02}


def _run(job, model, data, workdir, events, params, **kwargs):
    train, evaluation = data
    return run_job(job(model, train, evaluation, **params), workdir=workdir, events=events,
                   **kwargs)


@pytest.fixture(scope="module", params=["full", "lora"])
def uninterrupted(request, tmp_path_factory, tiny_lm, letter_data, job, make_events):
    params = PARAMS if request.param == "full" else LORA
    events = make_events()
    workdir = tmp_path_factory.mktemp(f"uninterrupted-{request.param}")
    summary = _run(job, tiny_lm, letter_data, workdir, events, params)
    return params, summary, events


def test_cancel_then_resume_equals_an_uninterrupted_run(
    uninterrupted, tmp_path, tiny_lm, letter_data, job, make_events
):
    params, full_summary, full_events = uninterrupted
    assert full_summary["steps"] == 9 and [n for n, _, _ in full_events.checkpoints] == [1, 2, 3]

    # Cancelled right after checkpoint 1 (step 3): stops at the next step, saves nothing
    # more, and checkpoint 1 (possibly still being written) is published before it returns.
    first = make_events(stop_at_poll=4)
    summary = _run(job, tiny_lm, letter_data, tmp_path, first, params)
    assert summary["stopped"] is True and summary["stop_reason"] == "cancelled"
    assert summary["steps"] == 4
    assert [n for n, _, _ in first.checkpoints] == [1]
    assert list_published(tmp_path / "checkpoints") == [1]
    assert 100 not in first.percents

    # The worker restarts the job from its last checkpoint.
    second = make_events()
    resumed = _run(job, tiny_lm, letter_data, tmp_path, second, params,
                   resume_from=checkpoint_dir(tmp_path / "checkpoints", 1), next_number=2)
    assert resumed["steps"] == full_summary["steps"] == 9
    assert resumed["stopped"] is False
    assert [n for n, _, _ in second.checkpoints] == [2, 3]
    assert list_published(tmp_path / "checkpoints") == [1, 2, 3]
    assert [m["step"] for _, _, m in second.checkpoints] == [6, 9]
    assert second.percents[0] >= 33 and second.percents[-1] == 100
    assert second.losses[0][0] == 4  # loss reports continue from the checkpoint's step
    # Optimizer, scheduler, RNG and data order restored: the same model as never stopping.
    for (_, _, got), (_, _, want) in zip(second.checkpoints, full_events.checkpoints[1:],
                                         strict=True):
        assert got["eval_loss"] == pytest.approx(want["eval_loss"], abs=1e-4)
        assert got["is_lora"] == want["is_lora"]


def test_continued_training_starts_from_the_checkpoint(
    uninterrupted, tmp_path, tiny_lm, letter_data, job, make_events
):
    params, _, full_events = uninterrupted
    _, start, manifest = full_events.checkpoints[-1]
    events = make_events()
    # A new job on a fine-tuned model: it does not ask for LoRA, yet a LoRA
    # checkpoint keeps training its adapter.
    summary = _run(job, start, letter_data, tmp_path, events,
                   {**PARAMS, "num_train_epochs": 2})
    assert summary["initial_eval_loss"] == pytest.approx(manifest["eval_loss"], abs=1e-4)
    assert [n for n, _, _ in events.checkpoints] == [1, 2]
    last = events.checkpoints[-1][2]
    assert last["eval_loss"] < manifest["eval_loss"]
    assert last["is_lora"] == manifest["is_lora"]
    if manifest["is_lora"]:
        assert last["base_model_path"] == str(tiny_lm)
        assert "adapter_model.safetensors" in last["files"]
