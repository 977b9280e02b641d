"""`run_job`: the one entry point the worker's training child calls."""

from __future__ import annotations

from pathlib import Path

from tuneyard.checkpoints.writer import clean_leftovers
from tuneyard.training.job import TASK_TYPES, JobSpec, TrainingError, TrainingEvents
from tuneyard.training.loop import RunContext
from tuneyard.training.params import ParameterError, parse_parameters


def _recipe(task_type: str, technique: str = "SFT"):
    if technique in ("DPO", "GRPO") and task_type != "text-generation":
        raise TrainingError(f"{technique} trains text-generation models, not {task_type}")
    if technique == "DPO":
        from tuneyard.training.recipes.preference import train
    elif technique == "GRPO":
        from tuneyard.training.recipes.grpo import train
    elif technique != "SFT":
        raise TrainingError(f"unknown training technique {technique!r}; expected SFT, DPO "
                            "or GRPO")
    elif task_type == "text-generation":
        from tuneyard.training.recipes.text_generation import train
    elif task_type in ("classification", "regression"):
        from tuneyard.training.recipes.sequence import train
    elif task_type == "embedding":
        from tuneyard.training.recipes.embedding import train
    else:
        raise TrainingError(
            f"unknown task type {task_type!r}; expected one of {', '.join(TASK_TYPES)}"
        )
    return train


def run_job(
    spec: JobSpec,
    *,
    workdir: Path,
    events: TrainingEvents,
    resume_from: Path | None = None,
    next_number: int = 1,
    checkpoints_in_flight: int | None = None,
) -> dict:
    """Train `spec` in `workdir`, publishing checkpoints under `workdir/checkpoints`.

    Numbering starts at `next_number`; `resume_from` is a published checkpoint
    (with `state/`) of this same job to continue from. Checkpoints are written
    in the background, at most `checkpoints_in_flight` at once (default
    writer.MAX_IN_FLIGHT); every one is published before this returns.
    Returns {steps, max_steps, epochs, final_loss, stopped, stop_reason,
    checkpoints, initial_eval_loss, checkpoint_timings}. Raises TrainingError
    with a message for the user.
    """
    try:
        params = parse_parameters(spec.hyper_parameters)
    except ParameterError as exc:
        raise TrainingError(f"invalid hyper-parameters: {exc}") from exc
    train = _recipe(spec.task_type, spec.technique)
    if not spec.train_examples:
        raise TrainingError("the training set is empty: nothing to train on")
    if spec.model_path.startswith(("/", "~")) and not Path(spec.model_path).expanduser().exists():
        raise TrainingError(
            f"model '{spec.base_model}' cannot be loaded: {spec.model_path} does not exist"
        )

    from tuneyard.training.runtime import clear_errors, quiet_libraries
    from tuneyard.training.writer import MAX_IN_FLIGHT

    quiet_libraries()
    workdir = Path(workdir)
    ctx = RunContext(
        job_id=spec.job_id,
        task_type=spec.task_type,
        base_model=spec.base_model,
        hyper_parameters=dict(spec.hyper_parameters),
        params=params,
        workdir=workdir,
        events=events,
        resume_from=Path(resume_from) if resume_from is not None else None,
        next_number=next_number,
        max_in_flight=checkpoints_in_flight or MAX_IN_FLIGHT,
        started_at=spec.started_at,
        eval_loss_in_loop=spec.eval_loss_in_loop,
    )
    ctx.checkpoints_root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(ctx.checkpoints_root)  # a crashed earlier attempt's half-written files
    with clear_errors(spec.base_model):
        return train(spec, ctx)
