"""Errors every entry point shares, carrying the HTTP status the API maps them to.

Bodies follow the contract: 400 and 401 are `{status, error}`, 404 adds `code`.
"""

from __future__ import annotations


class TuneyardError(Exception):
    status = 400
    code: str | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        body: dict = {"status": self.status, "error": self.message}
        if self.code:
            body["code"] = self.code
        return body


class InvalidInput(TuneyardError):
    status = 400


class Unauthorized(TuneyardError):
    status = 401


class Forbidden(TuneyardError):
    status = 403


class NotFound(TuneyardError):
    status = 404
    code = "object_not_found"


class Conflict(TuneyardError):
    status = 409
    code = "conflict"


class PayloadTooLarge(TuneyardError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(TuneyardError):
    """A per-user or server-wide bound is reached; retry once something finished."""

    status = 429
    code = "limit_reached"
