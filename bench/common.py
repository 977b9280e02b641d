"""What every benchmark shares: the result record, statistics, child processes
(servers pinned to a core, load generators to the other), HTTP load and the
description of the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tuneyard.processes import spawn, stop_group

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"


# -- results -------------------------------------------------------------------------


@dataclass
class Result:
    """One figure: tuneyard's value, the baseline's, their ratio and the goal."""

    id: str
    measure: str
    unit: str
    tuneyard: float
    baseline: float
    ratio: float
    goal_op: str  # ">=" or "<="
    goal: float
    baseline_name: str
    details: dict = field(default_factory=dict)
    limits: str = ""
    """For a miss: what limits the figure and what would close it."""
    seconds: float = 0.0
    measured_at: str = ""
    quick: bool = False
    error: str | None = None
    """Why the benchmark could not produce its figure (then nothing else is meaningful)."""

    @property
    def passed(self) -> bool:
        if self.error is not None or self.ratio != self.ratio:  # NaN: no figure
            return False
        return self.ratio >= self.goal if self.goal_op == ">=" else self.ratio <= self.goal

    def to_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_json(cls, data: dict) -> Result:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**data)


def ratio_of(tuneyard: float, baseline: float) -> float:
    return tuneyard / baseline if baseline else float("inf")


# -- statistics ----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# -- processes -----------------------------------------------------------------------


def cpu_split() -> tuple[str | None, str | None]:
    """(server cpus, client cpus): a server and its load generator on different
    cores, so neither steals the other's; None where there is one core or no taskset."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    half = len(cpus) // 2
    return ",".join(map(str, cpus[:half])), ",".join(map(str, cpus[half:]))


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child in its own session; `stop()` ends its whole process group."""

    def __init__(self, argv: list[str], *, log_path: Path, env: dict | None = None,
                 cwd: Path | None = None):
        self.argv, self.log_path = argv, Path(log_path)
        self.popen = spawn(argv, log_path=self.log_path, env={**os.environ, **(env or {})},
                           cwd=cwd or REPO)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        stop_group(self.popen, grace=grace, kill_wait=5.0)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_http(url: str, proc: Process, *, timeout: float = 120.0,
              headers: dict | None = None) -> None:
    """Poll `url` until it answers below 500; fail with the log if the process dies."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as client:
        while True:
            if not proc.alive():
                raise RuntimeError(f"{proc.argv[0]} exited before answering:\n{proc.log_tail()}")
            try:
                if client.get(url, headers=headers).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{proc.log_tail()}")
            time.sleep(0.1)


def cpu_ticks(pid: int) -> int:
    """User + system CPU ticks used so far by process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_idle(pid: int, *, quiet: float = 0.5, timeout: float = 120.0) -> None:
    """Return once process `pid` has used (almost) no CPU for `quiet` seconds.

    After a load run the clients are gone but a server may still be working
    through requests it had accepted; measuring anything on the same core
    before it drains would charge that work to the next measurement.
    """
    if not Path(f"/proc/{pid}/stat").exists():
        time.sleep(quiet)
        return
    deadline = time.monotonic() + timeout
    before = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        after = cpu_ticks(pid)
        if after - before <= 2:  # ticks are 10 ms: a few are housekeeping
            return
        before = after


def wait_responsive(url: str, pid: int, *, timeout: float = 120.0) -> float:
    """Wait until server `pid` is idle and answers `url` within a second; return how
    long its first answer took (a server that stalls after a burst shows here)."""
    wait_idle(pid)
    deadline = time.monotonic() + timeout
    first = None
    with httpx.Client(timeout=timeout) as client:
        while True:
            start = time.perf_counter()
            client.get(url)
            elapsed = time.perf_counter() - start
            first = elapsed if first is None else first
            if elapsed < 1.0 or time.monotonic() > deadline:
                return first


# -- HTTP load -------------------------------------------------------------------------


@dataclass
class Load:
    """What a load run measured."""

    requests: int
    """Responses received (any status)."""
    seconds: float
    rps: float
    """Successful (2xx/3xx) responses per second."""
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Load:
    def grab(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    done = grab(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)")
    seconds = _wrk_ms(done.group(2) + done.group(3)) / 1e3
    failed = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        failed = int(match.group(1))
    errors = failed
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          output):
        errors += int(match.group(1)) + int(match.group(3)) + int(match.group(4))
    requests = int(done.group(1))
    return Load(requests=requests, seconds=seconds, rps=(requests - failed) / seconds,
                p50_ms=_wrk_ms(grab(r"^\s+50%\s+(\S+)").group(1)),
                p99_ms=_wrk_ms(grab(r"^\s+99%\s+(\S+)").group(1)),
                errors=errors, tool="wrk")


def http_load(url: str, *, connections: int, seconds: float, headers: dict | None = None,
              cpus: str | None = None, warmup: int = 3) -> Load:
    """`connections` clients requesting `url` back to back for `seconds`.

    wrk (C, one thread) where installed: it costs the machine far less than
    the servers it loads; otherwise an asyncio httpx client in a child process.
    The warm-up is `warmup` sequential requests: a concurrent one would leave
    a slow server still busy with it when the measurement starts.
    """
    headers = headers or {}
    with httpx.Client(headers=headers, timeout=120) as client:
        for _ in range(warmup):
            client.get(url).raise_for_status()
    if shutil.which("wrk"):
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                "--timeout", "120s"]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        done = subprocess.run(pinned([*argv, url], cpus), capture_output=True, text=True,
                              check=True)
        return parse_wrk(done.stdout)
    argv = [sys.executable, "-m", "bench.common", "load", url, str(connections), str(seconds),
            json.dumps(headers)]
    done = subprocess.run(pinned(argv, cpus), capture_output=True, text=True, check=True,
                          cwd=REPO)
    return Load(**json.loads(done.stdout.strip().splitlines()[-1]))


async def _httpx_load(url: str, connections: int, seconds: float, headers: dict) -> Load:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(limits=limits, timeout=60.0, headers=headers) as client:
        async def worker(until: float) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                start = time.perf_counter()
                response = await client.get(url)
                await response.aread()
                latencies.append(time.perf_counter() - start)
                errors += response.status_code >= 400
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    ms = [x * 1e3 for x in latencies]
    return Load(requests=len(ms), seconds=elapsed, rps=(len(ms) - errors) / elapsed,
                p50_ms=percentile(ms, 50), p99_ms=percentile(ms, 99), errors=errors,
                tool="httpx")


# -- the machine ---------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        import torch

        torch_version = torch.__version__
        threads = torch.get_num_threads()
    except ImportError:
        torch_version, threads = None, None
    tools = {}
    for tool, flag in (("wrk", "-v"), ("nginx", "-v")):
        path = shutil.which(tool)
        if path:
            done = subprocess.run([path, flag], capture_output=True, text=True)
            tools[tool] = (done.stdout + done.stderr).strip().splitlines()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "torch": torch_version,
        "torch_threads": threads,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "tools": tools,
        "load_average_at_start": load_average(),
    }


def scratch_dir(name: str, root: Path | None = None) -> Path:
    """A fresh temporary directory on the same disk as the repo's /tmp (or `root`)."""
    return Path(tempfile.mkdtemp(prefix=f"tuneyard-bench-{name}-", dir=root))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    _url, _conns, _secs, _headers = sys.argv[2:6]
    _load = asyncio.run(_httpx_load(_url, int(_conns), float(_secs), json.loads(_headers)))
    print(json.dumps(asdict(_load)))
