"""Logging set-up: plain text by default, JSON lines with `TUNEYARD_LOG_FORMAT=json`.

Each JSON line carries the job or deployment it concerns, taken from context
variables that the code doing the work sets once (`log_context`): the worker
for the job it runs, a training or evaluation process for its job, the
deployment manager for the deployment it loads. A log shipper can then filter
one job's lines across the API, the worker and its processes without parsing
messages.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

FORMAT_ENV = "TUNEYARD_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"
_CHATTY = ("botocore", "boto3", "s3transfer", "urllib3")

job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
deployment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "deployment_id", default=None)


_process_ids: dict[str, str] = {}


def set_process_ids(*, job_id: str | None = None) -> None:
    """For a process that works on one job only (a training or evaluation
    process): every line it logs names the job, from any of its threads
    (a new thread does not inherit context variables)."""
    if job_id is not None:
        _process_ids["job_id"] = job_id


@contextmanager
def log_context(*, job_id: str | None = None, deployment_id: str | None = None) -> Iterator[None]:
    """Within the block, every log line names this job and/or deployment."""
    tokens = []
    if job_id is not None:
        tokens.append((job_id_var, job_id_var.set(job_id)))
    if deployment_id is not None:
        tokens.append((deployment_id_var, deployment_id_var.set(deployment_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        # An explicit `extra={"job_id": …}` wins over the context.
        for name, var in (("job_id", job_id_var), ("deployment_id", deployment_id_var)):
            value = getattr(record, name, None) or var.get() or _process_ids.get(name)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def json_logs() -> bool:
    value = os.environ.get(FORMAT_ENV, "text").strip().lower()
    if value not in ("text", "json"):
        raise ValueError(f"{FORMAT_ENV} must be 'text' or 'json', got {value!r}")
    return value == "json"


def configure(level: int = logging.INFO, *, stream=None) -> bool:
    """Set up the root logger for this process; True when the format is JSON.

    In JSON mode every logger, uvicorn's included, goes through one handler.
    """
    stream = stream or sys.stderr
    for name in _CHATTY:  # "found credentials in environment variables", per client
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    if not json_logs():
        logging.basicConfig(level=level, format=TEXT_FORMAT, stream=stream)
        return False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        # An earlier uvicorn config may have set its own level or disabled it.
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
    return True
