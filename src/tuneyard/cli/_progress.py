"""Progress bars for long transfers, drawn on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ._output import err


@contextmanager
def transfer_progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A `progress(done, total)` callback that draws a byte-count bar.

    The bar is drawn only on a terminal: in a pipe or a CI log it would be noise.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
