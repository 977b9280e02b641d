"""Fixtures for end-to-end tests: a live `tuneyard serve` and the real Emissary SDK.

The SDK lives in its own virtualenv (.venv-emissary, `make .venv-emissary/.stamp`);
`emissary(op, *args)` runs tests/emissary_driver.py there as a child process and
returns the JSON it prints (see that file for the ops and the output shape).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .server import REPO, LiveServer, start_server

EMISSARY_VENV = REPO / ".venv-emissary"
DRIVER = REPO / "tests" / "emissary_driver.py"
_SERVER_KEY = object()  # "use the live server's key"


@pytest.fixture(scope="session")
def emissary_python() -> Path:
    python = EMISSARY_VENV / "bin" / "python"
    if not python.exists() or not (EMISSARY_VENV / ".stamp").exists():
        pytest.fail(
            f"the Emissary SDK virtualenv is missing ({python}); "
            "run `make .venv-emissary/.stamp` (it installs emissary-client-sdk==0.4.4)",
            pytrace=False,
        )
    return python


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("tuneyard-home")
    from tests.conftest import _postgres_url, _reset_postgres

    pg_url = _postgres_url()
    if pg_url:
        # Start from an empty database: rows left by earlier tests (say, Pending
        # jobs) would otherwise be picked up by this server's worker.
        _reset_postgres(pg_url)
    try:
        server = start_server(home)
    except RuntimeError as exc:
        failure = str(exc)
    else:
        failure = None
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    died = None
    try:
        yield server
    finally:
        died = server.process.poll()
        server.stop()
    if died is not None:
        pytest.fail(
            f"`tuneyard serve` died during the tests (exit {died}); stderr tail:\n"
            f"{server.stderr_tail()}",
            pytrace=False,
        )


@dataclass
class Emissary:
    """Runs one SDK operation per call in the SDK's virtualenv."""

    python: Path
    server: LiveServer
    timeout_s: float = 300.0

    def __call__(self, op: str, *args: Any, key: Any = _SERVER_KEY) -> Any:
        """Return the driver's JSON: the parsed response, or {"error": {...}}.

        `key=None` sends no X-API-Key header; a string sends that key.
        """
        cmd = [str(self.python), str(DRIVER), "--server", self.server.url]
        key = self.server.key if key is _SERVER_KEY else key
        if key is not None:
            cmd += ["--key", key]
        cmd += [op, *(json.dumps(a) if isinstance(a, (dict, list)) else str(a) for a in args)]
        env = {k: v for k, v in os.environ.items() if k != "EMISSARY_CLIENT_API_KEY"}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"SDK op {op}{args} hung for {self.timeout_s}s; server stderr:\n"
                f"{self.server.stderr_tail()}",
                pytrace=False,
            )
        if proc.returncode != 0:
            pytest.fail(
                f"the Emissary SDK failed on {op} {list(args)} (exit {proc.returncode}); "
                f"usually it could not parse the server's response.\n"
                f"--- driver stderr:\n{proc.stderr[-6000:]}\n"
                f"--- server stderr tail:\n{self.server.stderr_tail(30)}",
                pytrace=False,
            )
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(
                f"driver printed non-JSON for {op}: {proc.stdout!r}\n{proc.stderr}", pytrace=False
            )

    def ok(self, op: str, *args: Any, **kw: Any) -> Any:
        """Like calling, but the SDK must have returned a value, not raised."""
        result = self(op, *args, **kw)
        if isinstance(result, dict) and set(result) == {"error"}:
            pytest.fail(f"SDK op {op} {list(args)} raised {result['error']}", pytrace=False)
        return result

    def error(self, op: str, *args: Any, **kw: Any) -> dict[str, Any]:
        """Like calling, but the SDK must have raised; return the error dict."""
        result = self(op, *args, **kw)
        if not (isinstance(result, dict) and set(result) == {"error"}):
            pytest.fail(
                f"SDK op {op} {list(args)} succeeded with {result!r}; expected an error",
                pytrace=False,
            )
        return result["error"]


@pytest.fixture(scope="module")
def emissary(live_server: LiveServer, emissary_python: Path) -> Emissary:
    return Emissary(python=emissary_python, server=live_server)
