"""What the client raises: one base class, so a caller (the CLI) catches one thing.

`TuneyardAPIError` carries the server's own message (the contract's `error`
field), never a generic "400 Bad Request", because that message is what tells
a user which field or dataset line was wrong.
"""

from __future__ import annotations


class TuneyardClientError(Exception):
    """Anything the client could not do; `str(exc)` is one human-readable line."""


class TuneyardAPIError(TuneyardClientError):
    """The server answered with an error status.

    `status` is the HTTP status, `message` the server's `error` text, `code`
    the contract's 404 `code` (or None).
    """

    def __init__(self, status: int, message: str, *, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class TuneyardConnectionError(TuneyardClientError):
    """The server could not be reached, or the connection broke or timed out."""


class ChecksumMismatch(TuneyardClientError):
    """A downloaded file's sha256 is not the one the server announced."""

    def __init__(self, path: str, expected: str, actual: str):
        super().__init__(
            f"{path}: sha256 {actual} does not match the expected {expected}; "
            "the partial file was removed, run the download again"
        )
        self.expected = expected
        self.actual = actual
