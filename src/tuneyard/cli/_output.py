"""How commands print: rich tables for people, JSON for scripts, errors on stderr.

Data goes to stdout and everything else (progress bars, notes, errors) to
stderr, so `tuneyard ... --json | jq` and `ID=$(tuneyard ... -q)` stay clean.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tuneyard.status import DeploymentStatus, JobStatus


def _console(*, stderr: bool) -> Console:
    # Off a terminal (a pipe, a CI log) rich would assume 80 columns and cut
    # ids; a wide page keeps every row on one line there. No `file=`: rich
    # then writes to whatever sys.stdout/stderr is at the time (test runners swap it).
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=wide)


out = _console(stderr=False)
err = _console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit non-zero: how every user error ends."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    err.print(message, soft_wrap=True)


def plain(obj: Any) -> Any:
    """API objects (and lists of them) as JSON-able data."""
    if isinstance(obj, list):
        return [plain(o) for o in obj]
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj


def print_json(obj: Any) -> None:
    json.dump(plain(obj), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit(obj: Any, *, as_json: bool, render: Callable[[], None]) -> None:
    """`--json` prints the objects as the server sent them; otherwise `render()`."""
    if as_json:
        print_json(obj)
    else:
        render()


def table(*columns: str, rows: Iterable[Iterable[Any]], title: str | None = None) -> Table:
    """A table whose first column (an id, a name: what users copy) is never cut."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        if i == 0:
            widest = max((len(r[0]) for r in cells), default=0)
            t.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
        else:
            t.add_column(column)
    for row in cells:
        t.add_row(*row)
    return t


def when(ts: int | float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def status_style(status: str) -> str:
    """A status word coloured by what it means for the user."""
    colour = {JobStatus.SUCCESS: "green", DeploymentStatus.DEPLOYED: "green",
              JobStatus.RUNNING: "cyan", "Testing": "cyan", DeploymentStatus.DEPLOYING: "cyan",
              JobStatus.PENDING: "yellow", JobStatus.FAILED: "red", JobStatus.TIMED_OUT: "red",
              JobStatus.CANCELLED: "magenta"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status
