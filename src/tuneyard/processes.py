"""Child processes in their own process group: start one, stop the whole group.

Everything tuneyard runs out of process (a job's training child, its
evaluations, a model server, the demo's server; tests and benchmarks too) is
started with `spawn`, in a new session, so that `stop_group` can end it *and
everything it started* (dataloader workers, tokenizer pools, a server's own
children) with one signal, and a Ctrl-C aimed at the parent's terminal never
reaches it mid-step. See docs/architecture.md (processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ForkedChild", "die_with_parent", "group_alive", "process_identity", "signal_group",
           "spawn", "spawn_module", "stop_group", "stop_recorded_group"]


def spawn(
    argv: Sequence[str],
    *,
    log_path: str | os.PathLike | None = None,
    stderr_path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen:
    """Start `argv` as the leader of a new session (and so of a new process group).

    Its pid is the group id that `stop_group` and `signal_group` take. Output
    (stdout and stderr) is appended to `log_path`, or discarded when it is None;
    `stderr_path` sends stderr to a file of its own. `env` is the complete
    environment (None: this process's). stdin is never inherited.
    """
    def open_log(path: str | os.PathLike | None):
        if path is None:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")

    out = open_log(log_path)
    err = open_log(stderr_path)
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=err if err is not None else
            (subprocess.STDOUT if out is not None else subprocess.DEVNULL),
            env=None if env is None else dict(env), cwd=cwd, pass_fds=tuple(pass_fds),
            start_new_session=True,
        )
    finally:  # the child holds its own copies
        for fh in (out, err):
            if fh is not None:
                fh.close()


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False if there is no such group (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether process group `pgid` has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's (a reused pid): not ours to stop
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    # killpg counts zombies too, and a zombie waits for a parent that may not
    # be us (a group known only by its pid, e.g. from the DB), or for an init
    # that never reaps: on Linux, look at each member. A leader shows "Z" as
    # soon as its main thread exits while its other threads are still being
    # torn down: it is dead only once they are gone.
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            if fields[0] != "Z" or len(os.listdir(entry / "task")) > 1:
                return True
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return False


def _reap(target: subprocess.Popen | ForkedChild | int) -> None:
    """Collect the leader's exit status if it is our child and has exited, so
    that no zombie of ours outlives `stop_group` (and killpg stops seeing it)."""
    if not isinstance(target, int):
        target.poll()
        return
    try:
        os.waitpid(target, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_group(
    target: subprocess.Popen | ForkedChild | int, *, grace: float = 10.0,
    kill_wait: float = 10.0
) -> bool:
    """SIGTERM the process group led by `target` (a `spawn`ed Popen, or its pid),
    wait up to `grace` seconds for every member to exit, then SIGKILL what is left.

    Returns True once the whole group is gone (at once if it already was);
    False if something survived SIGKILL for `kill_wait` seconds (a process
    stuck in the kernel). A Popen's `returncode` is set when this returns True.
    """
    pgid = int(target) if isinstance(target, int) else target.pid

    def gone() -> bool:
        _reap(target)  # first: without /proc a zombie leader would count as alive
        if group_alive(pgid):
            return False
        _reap(target)  # again: the leader may have exited since the first
        return True

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        if gone():
            return True
        signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if gone():
                return True
            time.sleep(0.05)
    return gone()


# -- pids that outlive us: recorded, then checked before any signal ------------
def process_identity(pid: int) -> str | None:
    """What tells this process apart from a later one given the same pid: its
    start time (clock ticks since boot, /proc/<pid>/stat field 22). None when
    there is no such process (or no /proc to ask)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_recorded_group(pid: int, identity: str | None, *, grace: float = 2.0) -> bool:
    """Stop the process group of a process known only from a record (a DB row
    written by an earlier run of this server), never a stranger's.

    A live process with that pid but another start time is a recycled pid:
    left alone. With the leader gone but members of its group left (Linux never
    hands out a pid that is still some group's id), the group is still ours.
    Returns True when something of ours was stopped."""
    current = process_identity(pid)
    if current is not None:
        if identity is None or current != identity:
            return False  # someone else's process now, or not provably ours
    elif not group_alive(pid):
        return False
    return stop_group(pid, grace=grace)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies, and exit
    at once if that already happened: a child is never left running, orphaned,
    after the process that supervised it crashed (even under kill -9).

    Called first thing in a forked child, whose parent is the forkserver; that
    exits as soon as the server or worker that owns it dies, so the signal
    follows a crash of the owner. A no-op where prctl is not available."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent == 1 or os.getppid() != parent:
        os._exit(1)  # orphaned before the request took effect


# -- Python children forked from a preloaded server --------------------------
# A job's training and evaluation processes import torch and transformers,
# which costs about ten seconds of CPU per process on a small machine: more
# than many jobs spend training. `spawn_module` forks them instead from a
# multiprocessing "forkserver" that has imported those libraries once (it
# has run no torch code, so forking it is safe; it is a fresh interpreter,
# not this process, so the API server itself never imports torch). Each child
# is still a process of its own, in its own process group, as with `spawn`.
PRELOAD = ("tuneyard._forkserver_guard", "torch", "transformers", "peft", "tuneyard.worker.child",
           "tuneyard.worker.evaluate", "tuneyard.training", "tuneyard.evaluation.evaluate",
           "tuneyard.serving.server")
_context = None


def _forkserver():
    global _context
    if _context is None:
        import multiprocessing
        import threading

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        # Started from a thread that lives as long as this process: the
        # forkserver's PR_SET_PDEATHSIG (tuneyard._forkserver_guard) follows
        # the thread that forked it, and a pool thread that started it could
        # end (and take every job and model server with it) at any time.
        started = threading.Event()

        def keep() -> None:
            try:
                from multiprocessing import forkserver

                forkserver.ensure_running()
            finally:
                started.set()
            threading.Event().wait()

        threading.Thread(target=keep, name="tuneyard-forkserver", daemon=True).start()
        started.wait()
        _context = context
    return _context


def warm_forkserver() -> None:
    """Start the preloaded server now, in the background, rather than at the first
    `spawn_module` (a deployment or a job), which would then wait for its imports
    (bench P10: a deployment's first token). Returns at once: the server imports
    its PRELOAD in its own process, on its own time; a spawn meanwhile waits for it."""
    import threading
    from multiprocessing import forkserver

    _forkserver()

    def start() -> None:
        try:
            forkserver.ensure_running()
        except Exception:  # noqa: BLE001 - the first spawn starts it (and reports) instead
            pass

    threading.Thread(target=start, name="tuneyard-forkserver-warm", daemon=True).start()


class ForkedChild:
    """A `spawn_module` child, with the part of Popen's interface tuneyard uses."""

    def __init__(self, process):
        self._process = process
        self.pid: int = process.pid

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        return self._process.exitcode

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self._process.exitcode


FD_PLACEHOLDER = "{fd}"
"""In `spawn_module`'s argv: replaced by the child's descriptor of the passed socket."""


def _leave_forkserver() -> None:
    """Drop this child's hold on the forkserver, so that it exits as soon as
    its owner (the server or worker) dies, and our PR_SET_PDEATHSIG fires.

    multiprocessing hands every forkserver child the write end of the pipe
    whose EOF tells the forkserver its owner is gone (so that children could
    fork siblings); while any child held it, an owner killed with SIGKILL
    would leave the forkserver, and every child, running for good."""
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
        server._forkserver_address = None
        server._forkserver_pid = None
    except (AttributeError, OSError):
        pass


def _run_module(module: str, argv: list[str], env: dict[str, str], log_path: str,
                sock=None) -> None:
    """In the forked child: become a session leader, send output to the log,
    take the given environment, then run `python -m module argv...`."""
    import runpy
    import sys

    os.setsid()
    _leave_forkserver()
    die_with_parent()
    if sock is not None:
        fd = sock.detach()
        argv = [str(fd) if arg == FD_PLACEHOLDER else arg for arg in argv]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((devnull, 0), (out, 1), (out, 2)):
        os.dup2(fd, target)
    os.close(out)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(env)
    from tuneyard.config import get_settings

    get_settings.cache_clear()  # read again from this child's environment
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and "torch" in sys.modules:
        # The OpenMP runtime read the variable when the server loaded it.
        sys.modules["torch"].set_num_threads(int(threads))
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def spawn_module(module: str, argv: Sequence[str], *, log_path: str | os.PathLike,
                 env: Mapping[str, str], sock=None) -> ForkedChild:
    """Like `spawn([sys.executable, "-m", module, *argv], ...)`, forked from the
    preloaded server. `env` is the child's complete environment; output (stdout
    and stderr) is appended to `log_path`. A socket `sock` is handed to the
    child, which finds its descriptor where argv says `FD_PLACEHOLDER`."""
    process = _forkserver().Process(
        target=_run_module, args=(module, list(argv), dict(env), str(log_path), sock),
        name=f"tuneyard:{module}")
    process.start()
    return ForkedChild(process)
