"""Start and stop a real `tuneyard serve` process for end-to-end tests.

`start_server()` runs the installed console script in its own process group with an
isolated home directory, waits for `GET /healthz`, and returns a `LiveServer`;
`LiveServer.stop()` ends the whole group (SIGTERM, then SIGKILL). The server's output
goes to files in its home, so a chatty server never blocks on a full pipe and a
failure can quote the tail.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tuneyard.processes import spawn, stop_group

REPO = Path(__file__).resolve().parents[2]
# The server must be the same install as the tests: the venv running pytest.
TUNEYARD_BIN = Path(sys.executable).parent / "tuneyard"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "<no output>"
    return "\n".join(lines[-n:]) or "<empty>"


@dataclass
class LiveServer:
    url: str
    key: str
    home: Path
    process: subprocess.Popen
    env: dict[str, str] = field(repr=False)

    @property
    def stdout_path(self) -> Path:
        return self.home / "server.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.home / "server.stderr.log"

    def stderr_tail(self, n: int = 60) -> str:
        return tail(self.stderr_path, n)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the process group (job processes too), SIGKILL what is left after
        `grace_s`; return the server's exit code."""
        stop_group(self.process, grace=grace_s)
        return self.process.returncode


def server_env(
    *, home: Path, port: int, key: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    # Inherited TUNEYARD_* settings (a developer's own home or database) must never
    # reach the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEYARD_")}
    env.update(
        {
            "TUNEYARD_HOME": str(home),
            "TUNEYARD_BOOTSTRAP_API_KEY": key,
            "TUNEYARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    from tests.conftest import _postgres_url

    database_url = _postgres_url()
    if database_url:
        env["TUNEYARD_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def start_server(
    home: Path, *, extra_env: dict[str, str] | None = None, timeout_s: float = 60.0,
    key: str | None = None,
) -> LiveServer:
    """Run `tuneyard serve` on a free port with `home` as TUNEYARD_HOME; wait for health.

    `key` (default: a new one) is the admin key; pass the same one to restart
    a server on the same home as the same user.

    Raises RuntimeError (with the server's stderr tail) if it exits or stays unhealthy.
    """
    if not TUNEYARD_BIN.exists():
        raise RuntimeError(f"{TUNEYARD_BIN} not found; run `make setup`")
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    key = key or "ty-test-" + secrets.token_urlsafe(24)
    env = server_env(home=home, port=port, key=key, extra=extra_env)
    cmd = [str(TUNEYARD_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    for log in ("server.stdout.log", "server.stderr.log"):
        (home / log).unlink(missing_ok=True)  # this run's output only
    proc = spawn(cmd, log_path=home / "server.stdout.log",
                 stderr_path=home / "server.stderr.log", env=env, cwd=home)
    server = LiveServer(url=f"http://127.0.0.1:{port}", key=key, home=home, process=proc, env=env)
    try:
        _wait_healthy(server, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: LiveServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            code = server.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"`tuneyard serve` exited with {code} before becoming healthy; "
                    f"stderr tail:\n{server.stderr_tail()}"
                )
            try:
                res = http.get(server.url + "/healthz")
                if res.status_code == 200:
                    return
                last = f"HTTP {res.status_code}: {res.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"`tuneyard serve` not healthy after {timeout_s:.0f}s ({last}); "
                    f"stderr tail:\n{server.stderr_tail()}"
                )
            time.sleep(0.2)
