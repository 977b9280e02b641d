"""JSON log lines (TUNEYARD_LOG_FORMAT=json) name the job or deployment they concern."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from tuneyard import logs


@pytest.fixture
def json_stream(monkeypatch):
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        assert logs.configure(stream=stream) is True
        yield stream
    finally:  # give pytest its capture handlers back
        root.handlers[:] = handlers
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_the_ids_in_context(json_stream):
    log = logging.getLogger("tuneyard.worker")
    log.info("no job yet")
    with logs.log_context(job_id="tr-1"):
        log.info("job %s: started", "tr-1")
        # Another thread has its own context: it names no job unless told.
        thread = threading.Thread(target=lambda: log.info("elsewhere"))
        thread.start()
        thread.join()
        with logs.log_context(deployment_id="dp-9"):
            log.warning("both")
    logging.getLogger("tuneyard.deploy").info("loaded", extra={"deployment_id": "dp-2"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    first, started, elsewhere, both, loaded, failed = lines(json_stream)
    assert "job_id" not in first and first["message"] == "no job yet"
    assert started["job_id"] == "tr-1" and started["message"] == "job tr-1: started"
    assert started["level"] == "info" and started["logger"] == "tuneyard.worker"
    assert "job_id" not in elsewhere
    assert (both["job_id"], both["deployment_id"], both["level"]) == ("tr-1", "dp-9", "warning")
    assert loaded["deployment_id"] == "dp-2" and "job_id" not in loaded
    assert "RuntimeError: boom" in failed["exception"]
    assert started["ts"].endswith("Z")


def test_uvicorn_lines_go_through_the_json_handler(json_stream):
    logging.getLogger("uvicorn.access").info('"GET /healthz HTTP/1.1" 200')
    assert lines(json_stream)[0]["logger"] == "uvicorn.access"


def test_an_unknown_format_is_refused(monkeypatch):
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    with pytest.raises(ValueError, match="must be 'text' or 'json'"):
        logs.json_logs()


def test_a_one_job_process_names_its_job_from_every_thread(json_stream):
    logs.set_process_ids(job_id="tr-7")
    try:
        thread = threading.Thread(target=lambda: logging.getLogger("t").info("writer thread"))
        thread.start()
        thread.join()
    finally:
        logs._process_ids.clear()
    assert lines(json_stream)[0]["job_id"] == "tr-7"
