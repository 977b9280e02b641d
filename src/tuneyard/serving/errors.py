"""Errors raised by the serving layer, importable without torch.

The API server maps them to the contract's bodies: `InvalidRequest` (and its
subclass `SamplingError`) to 400; `UnsupportedTask` to a 4xx saying which task
the deployment serves; `ModelLoadError` to a Failed deployment with its message.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class; `str(e)` is a message fit to show the user."""

    code = "serving_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(ServingError, ValueError):
    """The request's content is wrong (a bad field value, an empty input)."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class SamplingError(InvalidRequest):
    """A generation parameter is out of range; `field` names it as the client sent it."""

    code = "invalid_sampling"


class UnsupportedTask(ServingError):
    """The route does not fit the loaded model (classification on a chat model)."""

    code = "unsupported_task"


class ModelLoadError(ServingError):
    """The model directory cannot be loaded for the requested task."""

    code = "model_load_error"


class ModelServerError(ServingError):
    """Talking to a model-server process failed (it is not running, not ready,
    or it answered with an error)."""

    code = "model_server_error"


class ModelServerUnavailable(ModelServerError):
    """The model server cannot be reached (not started, exited, or timed out)."""

    code = "model_server_unavailable"


class ModelServerRequestError(ModelServerError):
    """The model server refused or failed a request. `status_code` is its HTTP
    status (400: the request was wrong, see `code` and `field`; 500: it failed)."""

    def __init__(self, message: str, *, status_code: int, code: str | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code or "model_server_error"
        self.field = field
