"""A local Ray head for tests and `make demo-cluster`: 2 CPUs, no dashboard.

Started with `ray start --head --block` as our own child, in its own temp dir
and on free loopback ports, and stopped by killing that process group: never
`ray stop`, which would also end other people's Ray clusters on this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Ray on loopback on this machine: no usage reports, no token auth, one node.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayHead:
    def __init__(self, *, num_cpus: int = 2, log_dir: Path | None = None):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Ray's socket paths must stay short: a short temp dir, not pytest's.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tyray"))
        self.log = open((log_dir or self.temp_dir) / "ray-head.log", "ab")
        ray = Path(sys.executable).with_name("ray")
        self.proc = subprocess.Popen(
            [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={self.port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
             "--object-store-memory=200000000",
             "--include-dashboard=false", f"--temp-dir={self.temp_dir}",
             f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}"],
            env={**os.environ, **RAY_ENV}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait(self, timeout: float = 90) -> str:
        """The address, once the head answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}; "
                                   f"see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.address
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the Ray head did not start in {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._kill_leftovers()
        self.log.close()

    def _kill_leftovers(self) -> None:
        """Ray's own daemons (raylet, gcs, workers) whose command line names our temp dir."""
        marker = str(self.temp_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
