"""`jobs watch`: a live view of a job until it ends and its checkpoints are tested.

On a terminal it redraws in place (progress bar, latest loss, the checkpoint
table filling in); in a pipe or CI log it prints one line per change instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from tuneyard.status import JobStatus

from ._checkpoints import best_checkpoint, checkpoint_table
from ._output import note, out, status_style

if TYPE_CHECKING:
    from tuneyard.client import Checkpoint, TrainingJob, TuneyardClient

# After the job ends, how long to keep waiting for checkpoint evaluations.
EVAL_WAIT_S = 120.0


def _view(job: TrainingJob, checkpoints: list[Checkpoint]) -> Group:
    head = f"[bold]{job.name or job.id}[/bold] ({job.id})  {job.base_model}  " \
           f"{status_style(job.status)}"
    line = Table.grid(padding=(0, 1))
    loss = f"loss {job.latest_loss:.4g}" if job.latest_loss is not None else "loss –"
    step = job.training_loss[-1].step if job.training_loss else None
    line.add_row(ProgressBar(total=100, completed=job.progress, width=40),
                 f"{job.progress:3d}%", loss, f"step {step}" if step is not None else "")
    parts: list = [head, line]
    if job.error:
        parts.append(f"[red]{job.error}[/red]")
    parts.append(checkpoint_table(job, checkpoints))
    return Group(*parts)


def _summary(job: TrainingJob, checkpoints: list[Checkpoint]) -> str:
    """The log line for a change, when not on a terminal."""
    loss = f" loss {job.latest_loss:.4g}" if job.latest_loss is not None else ""
    tested = sum(c.evaluated for c in checkpoints)
    return (f"{job.id} {job.status} {job.progress}%{loss}; "
            f"checkpoints {len(checkpoints)} ({tested} tested)")


def watch_job(api: TuneyardClient, project_id: str, job_id: str, *, interval: float = 2.0,
              eval_wait_s: float = EVAL_WAIT_S, console: Console = out) -> TrainingJob:
    """Follow the job; return it once it ended and its checkpoints are evaluated.

    `console` is stdout's by default; stderr's when stdout carries `--json`/`-q` output.
    """
    finished_at: float | None = None
    live = Live(console=console, refresh_per_second=4, transient=False) \
        if console.is_terminal else None
    last_line = None
    if live is not None:
        live.start()
    try:
        while True:
            job = api.jobs.get(project_id, job_id)
            checkpoints = api.jobs.checkpoints(project_id, job_id)
            if live is not None:
                live.update(_view(job, checkpoints), refresh=True)
            else:
                line = _summary(job, checkpoints)
                if line != last_line:
                    console.print(line, markup=False)
                    last_line = line
            if job.stopped:
                finished_at = finished_at or time.monotonic()
                evaluated = all(c.evaluated for c in checkpoints)
                if job.status != JobStatus.SUCCESS or evaluated or \
                        time.monotonic() - finished_at > eval_wait_s:
                    break
            time.sleep(interval)
    finally:
        if live is not None:
            live.stop()
    if live is None:
        console.print(checkpoint_table(job, checkpoints))
    if job.status == JobStatus.SUCCESS and not all(c.evaluated for c in checkpoints):
        note(f"some test results are still pending; see `tuneyard checkpoints list {job.id}` "
             "later")
    best = best_checkpoint(job, checkpoints)
    if best is not None:
        console.print(f"best checkpoint: {best}")
    return job
