"""tuneyard.processes: a spawned child and everything it starts stop together."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tuneyard.processes import group_alive, spawn, spawn_module, stop_group

# A child that starts a grandchild (same group), writes both pids, and waits.
# With IGNORE_TERM set both ignore SIGTERM, so only the SIGKILL step ends them.
CHILD = """
import os, signal, subprocess, sys, time
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import os, signal, time\\n"
    "if os.environ.get('IGNORE_TERM'): signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    "print('ready', flush=True)\\n"
    "time.sleep(600)"], stdout=subprocess.PIPE)
grandchild.stdout.readline()  # its SIGTERM handler is in place
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {grandchild.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a reparented grandchild may wait for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start(tmp_path: Path, **env: str):
    pids_file = tmp_path / "pids"
    log = tmp_path / "logs" / "child.log"
    proc = spawn([sys.executable, "-c", CHILD, str(pids_file)], log_path=log,
                 env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while not pids_file.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the child never started its grandchild"
        time.sleep(0.05)
    child, grandchild = map(int, pids_file.read_text().split())
    return proc, child, grandchild


def test_stop_group_ends_child_and_grandchild(tmp_path):
    proc, child, grandchild = _start(tmp_path)
    assert proc.pid == child and os.getpgid(grandchild) == child  # one group, led by the child
    assert _alive(child) and _alive(grandchild)
    started = time.monotonic()
    assert stop_group(proc, grace=10)
    assert time.monotonic() - started < 5  # SIGTERM sufficed: no wait for the grace
    assert proc.returncode is not None  # reaped: no zombie of ours left behind
    assert not _alive(child) and not _alive(grandchild)
    assert not group_alive(child)
    assert stop_group(proc)  # already stopped: a no-op


def test_stop_group_kills_what_ignores_sigterm(tmp_path):
    proc, child, grandchild = _start(tmp_path, IGNORE_TERM="1")
    started = time.monotonic()
    assert stop_group(child, grace=0.5)  # by pid, as for a group known from the DB
    assert time.monotonic() - started >= 0.5
    assert not _alive(child) and not _alive(grandchild)
    proc.wait(timeout=5)


def test_spawn_writes_the_log_and_takes_env(tmp_path):
    log = tmp_path / "deep" / "out.log"
    code = "import os, sys; print(os.environ['X_TEST']); print('err', file=sys.stderr)"
    proc = spawn([sys.executable, "-c", code], log_path=log, env={**os.environ, "X_TEST": "42"})
    assert proc.wait(timeout=30) == 0
    assert log.read_text().split() == ["42", "err"]


def _wait_for_file(path: Path, child) -> list[str]:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert child.poll() is None or path.exists(), "the forked child exited early"
        assert time.monotonic() < deadline, "the forked child never started"
        time.sleep(0.05)
    return path.read_text().split()


def test_spawn_module_forks_a_child_with_its_own_group_env_and_log(tmp_path):
    out, log = tmp_path / "out", tmp_path / "logs" / "forked.log"
    child = spawn_module("tests.forked_child", [str(out), "7"], log_path=log,
                         env={**os.environ, "X_TEST": "forked"})
    assert child.wait(timeout=60) == 7 and child.returncode == 7
    pid, pgid, seen = _wait_for_file(out, child)
    assert int(pid) == int(pgid) == child.pid  # a session (and group) of its own
    assert seen == "forked"  # the environment given, not the server's
    assert "hello from the forked child" in log.read_text()


def test_stop_group_ends_a_forked_child(tmp_path):
    out = tmp_path / "out"
    child = spawn_module("tests.forked_child", [str(out), "sleep"],
                         log_path=tmp_path / "forked.log", env=dict(os.environ))
    _wait_for_file(out, child)
    assert child.poll() is None
    assert stop_group(child, grace=5)
    assert child.returncode == -15  # SIGTERM
    assert not group_alive(child.pid)


def test_a_recorded_group_is_stopped_only_if_its_start_time_matches(tmp_path):
    from tuneyard.processes import process_identity, stop_recorded_group

    proc = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    identity = process_identity(proc.pid)
    assert identity and identity.isdigit()
    try:
        # Another start time: a recycled pid, someone else's process now.
        assert not stop_recorded_group(proc.pid, str(int(identity) + 1))
        assert not stop_recorded_group(proc.pid, None)
        assert proc.poll() is None
        assert stop_recorded_group(proc.pid, identity)
        assert not group_alive(proc.pid)
    finally:
        stop_group(proc, grace=0.1)
    assert process_identity(proc.pid) is None
    assert not stop_recorded_group(proc.pid, identity)  # gone: nothing to do


# A process that forks a sleeping child from its forkserver (nothing preloaded,
# to stay quick), prints the child's pid, and waits to be killed.
OWNER = """
import sys, time
import tuneyard.processes as processes
processes.PRELOAD = ()
child = processes.spawn_module("tests.forked_child", [sys.argv[1], "sleep"],
                               log_path=sys.argv[1] + ".log", env=dict(__import__("os").environ))
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_forked_child_dies_with_its_owner_killed_by_sigkill(tmp_path):
    import signal
    import subprocess

    out = tmp_path / "child"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(out)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parents[1])
    try:
        child = int(owner.stdout.readline())
        deadline = time.monotonic() + 30
        while not out.exists():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        assert _alive(child)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the orphaned child is still running"
            time.sleep(0.05)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
        if _alive(child):
            os.kill(child, 9)
