"""Dataset problems: one located issue, the error that carries them, and the log that caps them.

A dataset is checked whole before it is accepted, so a user fixing a file sees many of its
problems at once instead of one per upload; the log keeps the first few and counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ISSUES = 20
"""Issues kept on an error; further ones are only counted."""

SHOWN_IN_MESSAGE = 5
"""Issues spelled out in ``str(error)``, which ends up in a one-line HTTP error body."""

FILE = "file"
"""Location of a problem with the file as a whole rather than one line or record."""


@dataclass(frozen=True)
class DatasetIssue:
    """One problem, where it is ("line 3", "row 5", "record 2", or "file") and what it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return self.message if self.location == FILE else f"{self.location}: {self.message}"


class DatasetValidationError(ValueError):
    """A dataset file that cannot be used; ``issues`` holds up to MAX_ISSUES of its problems."""

    def __init__(self, issues: list[DatasetIssue], *, total: int | None = None) -> None:
        self.issues = list(issues)
        self.total = max(total or 0, len(self.issues))
        super().__init__(_summary(self.issues, self.total))

    def __reduce__(self):
        # Jobs run in child processes; the default reduce would call __init__ with the message.
        return (_rebuild, (self.issues, self.total))


def _rebuild(issues: list[DatasetIssue], total: int) -> DatasetValidationError:
    return DatasetValidationError(issues, total=total)


def _summary(issues: list[DatasetIssue], total: int) -> str:
    shown = issues[:SHOWN_IN_MESSAGE]
    text = "invalid dataset: " + "; ".join(str(issue) for issue in shown)
    if total > len(shown):
        text += f" ({total} problems in all)"
    return text


class IssueLog:
    """Collects issues while a file is read: keeps the first MAX_ISSUES, counts them all."""

    def __init__(self) -> None:
        self.issues: list[DatasetIssue] = []
        self.total = 0

    def add(self, location: str, message: str) -> None:
        self.total += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(DatasetIssue(location, message))

    def raise_if_any(self) -> None:
        if self.total:
            raise DatasetValidationError(self.issues, total=self.total)


def fail(location: str, message: str) -> DatasetValidationError:
    """The error for a problem that stops reading (a broken header, an unreadable file)."""
    return DatasetValidationError([DatasetIssue(location, message)])
