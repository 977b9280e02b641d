"""CLI fixtures: the real `tuneyard` binary, run as a user would, against a live server.

Every run gets a private HOME and XDG_CONFIG_HOME (the login file lives
there) and none of the developer's TUNEYARD_* variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import TUNEYARD_BIN, LiveServer


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs `tuneyard ARGS...` in a clean environment; `env` adds variables."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    dataset: str = ""  # for fixtures that prepare one

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEYARD_")}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        env.pop("COLUMNS", None)
        return env | self.env

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120,
                 env: dict[str, str] | None = None) -> Run:
        proc = subprocess.run([str(TUNEYARD_BIN), *args], capture_output=True, text=True,
                              input=input, timeout=timeout, env=self.base_env() | (env or {}),
                              cwd=self.home)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kw: Any) -> Run:
        run = self(*args, **kw)
        assert run.code == 0, f"tuneyard {' '.join(args)} exited {run.code}:\n{run.err}"
        return run

    def fails(self, *args: str, **kw: Any) -> Run:
        """The command must fail as a user error: non-zero, one line, no traceback."""
        run = self(*args, **kw)
        assert run.code != 0, f"tuneyard {' '.join(args)} succeeded:\n{run.out}"
        assert "Traceback" not in run.err and "Traceback" not in run.out, run.err
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.err
        return run

    @property
    def config_file(self) -> Path:
        return self.home / ".config" / "tuneyard" / "config.json"


@pytest.fixture(scope="session")
def server(live_server):
    return live_server


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "user"
    home.mkdir()
    return Cli(home=home)


@pytest.fixture
def logged_in(cli: Cli, server: LiveServer) -> Cli:
    cli.ok("login", "--url", server.url, "--key", server.key)
    return cli
