"""`tuneyard jobs …` and `tuneyard checkpoints …`: fine-tuning and its results."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from tuneyard.status import JOB_FINAL, JobStatus

from ._checkpoints import checkpoint_table
from ._output import emit, err, fail, note, out, size, status_style, table, when
from ._progress import transfer_progress
from ._session import (
    JsonOption,
    ProjectOption,
    QuietOption,
    YesOption,
    client,
    confirm,
    project_id,
)
from ._watch import EVAL_WAIT_S, watch_job

jobs_app = typer.Typer(no_args_is_help=True, help="Fine-tuning jobs.")
checkpoints_app = typer.Typer(no_args_is_help=True, help="A job's checkpoints.")


class TaskType(StrEnum):
    text_generation = "text-generation"
    classification = "classification"
    regression = "regression"
    embedding = "embedding"


class Technique(StrEnum):
    sft = "sft"
    dpo = "dpo"
    grpo = "grpo"


def parse_reward(pairs: list[str]) -> dict[str, float]:
    """`NAME=WEIGHT` strings as GRPO's reward map (test function -> finite weight)."""
    import math

    reward: dict[str, float] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        try:
            weight = float(raw)
        except ValueError:
            weight = math.nan
        if not sep or not name.strip() or not math.isfinite(weight):
            raise typer.BadParameter(f"expected NAME=WEIGHT with a finite number, got {pair!r}",
                                     param_hint="--reward")
        reward[name.strip()] = weight
    return reward


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`k=v` strings as a parameters dict; values are JSON scalars when they parse
    as one (`2e-4`, `3`, `true`), otherwise strings (`cosine`)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if not isinstance(value, (str, int, float, bool)):
            value = raw  # a list, object or null is not a parameter value: keep the text
        params[key.strip()] = value
    return params


@jobs_app.command("create")
def jobs_create(
    train: str = typer.Option(..., "--train", "-d", help="Training dataset id."),
    base_model: str = typer.Option(None, "--base-model", "-m",
                                   help="Base model (`tuneyard models list`)."),
    test: str = typer.Option(None, "--test", help="Test dataset id (default: hold out a split)."),
    split: float = typer.Option(None, "--split",
                                help="Share of the training set held out for testing, "
                                     "a fraction (0.2) or a percentage (20)."),
    task_type: TaskType = typer.Option(None, "--task-type",
                                       help="Default: from the base model's type."),
    test_functions: list[str] = typer.Option(None, "--test-function", "-t", metavar="NAME",
                                             help="A test function to score with (repeatable)."),
    from_job: str = typer.Option(None, "--from-job",
                                 help="Continue training from a checkpoint of this job "
                                      "(name or id); needs --checkpoint."),
    checkpoint: int = typer.Option(None, "--checkpoint", help="With --from-job: its number."),
    epochs: float = typer.Option(None, "--epochs", help="num_train_epochs."),
    learning_rate: float = typer.Option(None, "--learning-rate", "--lr", help="learning_rate."),
    batch_size: int = typer.Option(None, "--batch-size", help="per_device_train_batch_size."),
    max_steps: int = typer.Option(None, "--max-steps", help="max_steps."),
    lora: bool = typer.Option(None, "--lora/--full", help="use_lora: train a LoRA adapter, "
                                                          "or all weights.", show_default=False),
    params: list[str] = typer.Option(None, "--param", "-P", metavar="KEY=VALUE",
                                     help="Any job parameter as KEY=VALUE (repeatable), "
                                          "see `models show`."),
    name: str = typer.Option(None, "--name", "-n", help="Job name."),
    description: str = typer.Option(None, "--description", help="Job description."),
    hf_model_link: str = typer.Option(None, "--hf-model-link",
                                      help="A Hugging Face model to use as the base."),
    technique: Technique = typer.Option(
        None, "--technique", case_sensitive=False,
        help="sft (default: supervised), dpo (a prompt/chosen/rejected dataset; "
             "-P beta=…) or grpo (needs --reward and --test-function)."),
    reward: list[str] = typer.Option(None, "--reward", "-r", metavar="NAME=WEIGHT",
                                     help="GRPO: reward a completion by this test function "
                                          "with this weight (repeatable; implies "
                                          "--technique grpo)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow the job until it ends."),
    eval_wait: float = typer.Option(EVAL_WAIT_S, help="With --watch: after the job ends, "
                                    "seconds to wait for pending test results."),
    project: str = ProjectOption, as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Start a fine-tuning job."""
    pid = project_id(project)
    if from_job and base_model:
        fail("--from-job continues an earlier job: do not give --base-model too")
    if from_job and checkpoint is None:
        fail("--from-job needs --checkpoint N (see `tuneyard checkpoints list JOB`)")
    if checkpoint is not None and not from_job:
        fail("--checkpoint goes with --from-job")
    if not from_job and not base_model:
        fail("give --base-model (see `tuneyard models list`) or --from-job")
    rewards = parse_reward(reward or []) or None
    if rewards and technique not in (None, Technique.grpo):
        fail(f"--reward is GRPO's: it does not go with --technique {technique.value}")
    if technique == Technique.grpo and not rewards:
        fail("--technique grpo needs --reward NAME=WEIGHT (a test function and its weight)")
    if rewards and not test_functions:
        fail("GRPO needs --test-function NAME too (what evaluates each checkpoint)")
    parameters = parse_params(params or [])
    for key, value in (("num_train_epochs", epochs), ("learning_rate", learning_rate),
                       ("per_device_train_batch_size", batch_size), ("max_steps", max_steps),
                       ("use_lora", lora)):
        if value is not None:
            parameters[key] = value
    api = client()
    job = api.jobs.create(
        pid, base_model=from_job or base_model, train_dataset_id=train, test_dataset_id=test,
        train_test_split_ratio=split, name=name, description=description,
        task_type=task_type.value if task_type else None, parameters=parameters,
        test_functions=test_functions or None,
        base_model_option="fine-tuned" if from_job else None, checkpoint=checkpoint,
        hf_model_link=hf_model_link,
        training_technique=technique.value.upper() if technique else None, reward=rewards,
    )
    if quiet:
        print(job.id)
    else:
        emit(job, as_json=as_json, render=lambda: out.print(
            f"created job {job.id} ({job.name}): {job.base_model}, {job.task_type or ''} "
            f"{_technique_note(job)}{status_style(job.status)}"))
    if watch:
        # Keep stdout to the id or the JSON asked for; the live view goes to stderr.
        _finish(watch_job(api, pid, job.id, eval_wait_s=eval_wait,
                          console=err if quiet or as_json else out))


def _technique_note(job) -> str:
    return "" if job.training_technique == "SFT" else f"({job.training_technique}) "


@jobs_app.command("list")
def jobs_list(project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """List a project's training jobs."""
    jobs = client().jobs.list(project_id(project))
    emit(jobs, as_json=as_json, render=lambda: out.print(table(
        "job", "name", "base model", "task", "status", "progress", "created",
        rows=[(j.id, j.name, j.base_model, j.task_type, status_style(j.status),
               f"{j.progress}%", when(j.created_at)) for j in jobs])))


@jobs_app.command("show")
def jobs_show(job: str = typer.Argument(..., help="Job id."), project: str = ProjectOption,
              as_json: bool = JsonOption) -> None:
    """Show a job: status, datasets, hyperparameters, loss, checkpoints."""
    pid = project_id(project)
    api = client()
    detail = api.jobs.get(pid, job)
    if as_json:
        emit(detail, as_json=True, render=lambda: None)
        return
    out.print(f"[bold]{detail.name}[/bold] ({detail.id})  {status_style(detail.status)} "
              f"{detail.progress}%")
    rows = [("base model", detail.base_model), ("task", detail.task_type),
            ("train", detail.train_dataset and f"{detail.train_dataset.id} "
                                               f"({detail.train_dataset.name})"),
            ("test", detail.test_dataset and f"{detail.test_dataset.id} "
                                             f"({detail.test_dataset.name})"),
            ("test functions", ", ".join(detail.test_functions or []) or None),
            ("technique", None if detail.training_technique == "SFT"
             else detail.training_technique),
            ("reward", detail.reward and ", ".join(f"{k}={v:g}" for k, v in detail.reward.items())),
            ("latest loss", None if detail.latest_loss is None else f"{detail.latest_loss:.4g}"),
            ("created", when(detail.created_at)), ("updated", when(detail.updated_at)),
            ("error", detail.error and f"[red]{detail.error}[/red]")]
    out.print(table("field", "value", rows=[r for r in rows if r[1]]))
    if detail.hyper_parameters:
        out.print(table("parameter", "value", title="hyperparameters",
                        rows=sorted(detail.hyper_parameters.items())))
    out.print(checkpoint_table(detail, api.jobs.checkpoints(pid, job)))


@jobs_app.command("watch")
def jobs_watch(job: str = typer.Argument(..., help="Job id."), project: str = ProjectOption,
               interval: float = typer.Option(2.0, help="Seconds between updates."),
               eval_wait: float = typer.Option(EVAL_WAIT_S, help="After the job ends, seconds "
                                               "to wait for pending test results.")) -> None:
    """Follow a job live: progress, latest loss, checkpoints and their test results.

    Exits when the job has ended and its checkpoints are evaluated: 0 for
    Success, 1 otherwise.
    """
    _finish(watch_job(client(), project_id(project), job, interval=interval,
                      eval_wait_s=eval_wait))


def _finish(job) -> None:
    if job.status != JobStatus.SUCCESS:
        fail(f"job {job.id} ended {job.status}" + (f": {job.error}" if job.error else ""))


EVENTS_PAGE = 500


def _print_events(api, pid: str, job: str, after: int | None, *, as_json: bool) -> int | None:
    """Print every event after `after` (page by page); return the last id printed."""
    while True:
        page = api.jobs.events(pid, job, after=after, limit=EVENTS_PAGE)
        for event in page:
            if as_json:
                print(json.dumps(event.to_dict()), flush=True)
            else:
                style = {"error": "red", "warn": "yellow"}.get(event.level)
                text = f"[{style}]{event.message}[/{style}]" if style else event.message
                out.print(f"{when(event.created_at)}  {event.kind:<10} {text}",
                          highlight=False)
            after = event.id
        if len(page) < EVENTS_PAGE:
            return after


@jobs_app.command("logs")
def jobs_logs(job: str = typer.Argument(..., help="Job id."), project: str = ProjectOption,
              follow: bool = typer.Option(False, "--follow", "-f",
                                          help="Keep printing new events until the job "
                                               "ends (or pauses)."),
              interval: float = typer.Option(2.0, help="With --follow: seconds between polls."),
              as_json: bool = JsonOption) -> None:
    """Print a job's events, oldest first: created, claimed, started, step metrics,
    checkpoints, evaluations, status changes and errors."""
    import time

    pid = project_id(project)
    api = client()
    after = _print_events(api, pid, job, None, as_json=as_json)
    while follow:
        status = api.jobs.get(pid, job).status
        # Read the status first: the events written as the job ended are printed below.
        after = _print_events(api, pid, job, after, as_json=as_json)
        if status in (*JOB_FINAL, JobStatus.PAUSED):
            return
        time.sleep(interval)


@jobs_app.command("cancel")
def jobs_cancel(job: str = typer.Argument(..., help="Job id."),
                project: str = ProjectOption) -> None:
    """Cancel a job (its checkpoints so far stay)."""
    client().jobs.cancel(project_id(project), job)
    out.print(f"cancelled job {job}")


@jobs_app.command("delete")
def jobs_delete(job: str = typer.Argument(..., help="Job id."), project: str = ProjectOption,
                yes: bool = YesOption) -> None:
    """Delete a job and its checkpoints (cancelling it first if it runs)."""
    pid = project_id(project)
    confirm(f"Delete job {job} and all its checkpoints?", yes)
    client().jobs.delete(pid, job)
    out.print(f"deleted job {job}")


@checkpoints_app.command("list")
def checkpoints_list(job: str = typer.Argument(..., help="Job id."),
                     project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """List a job's checkpoints with their main test metrics; ★ marks the best."""
    pid = project_id(project)
    api = client()
    checkpoints = api.jobs.checkpoints(pid, job)
    if as_json:
        emit(checkpoints, as_json=True, render=lambda: None)
        return
    out.print(checkpoint_table(api.jobs.get(pid, job), checkpoints))


@checkpoints_app.command("download")
def checkpoints_download(
    job: str = typer.Argument(..., help="Job id."),
    number: int = typer.Argument(..., help="Checkpoint number."),
    output: str = typer.Option(None, "--output", "-o",
                                help="Archive file or directory "
                                     "(default: ./<job>-checkpoint-<n>.tar)."),
    extract: Path = typer.Option(None, "--extract", "-x", file_okay=False,
                                 help="Also unpack the archive into this directory."),
    project: str = ProjectOption,
) -> None:
    """Download a checkpoint as a tar archive (resumable, sha256-verified)."""
    pid = project_id(project)
    with transfer_progress(f"checkpoint {number}") as progress:
        result = client().jobs.download_checkpoint(pid, job, number, output,
                                                   extract_to=extract, progress=progress)
    checked = "sha256 verified" if result.verified else "no checksum to verify"
    resumed = f", resumed at {size(result.resumed_from)}" if result.resumed_from else ""
    note(f"{size(result.size)}, {checked}{resumed}")
    out.print(str(extract if extract is not None else result.path))
