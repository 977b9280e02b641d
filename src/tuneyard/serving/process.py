"""Start, wait for and stop model-server processes (one per deployment).

The API server calls these; nothing here imports torch. A model server runs
in its own session (process group), so stopping it ends everything it
started, and a crash in it never touches the API server. Its stdout and
stderr go to `log_path`, whose tail explains a failed start.

The listening socket is bound here, in the parent, and handed to the child
(its fd), so the port is known at once and no other process can take it
between choosing and binding; the child listens only once the model is
loaded, so a refused connection means "not ready yet".
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

import httpx

from tuneyard.processes import FD_PLACEHOLDER, ForkedChild, spawn_module, stop_group
from tuneyard.serving.client import AsyncModelServerClient, ModelServerClient
from tuneyard.serving.errors import ModelServerError, ModelServerUnavailable

__all__ = [
    "AsyncModelServerClient", "ModelServerClient", "ModelServerError", "ModelServerHandle",
    "ModelServerUnavailable", "is_running", "log_tail", "start_model_server",
    "stop_model_server", "wait_ready",
]


@dataclass
class ModelServerHandle:
    """What the API server keeps (and may store) about a running model server.

    Rebuilt from stored `pid`/`port`/`url` after an API restart, it has no
    `process`; stopping it still works (by process group)."""

    pid: int
    port: int
    url: str
    log_path: str | None = None
    process: ForkedChild | None = field(default=None, repr=False, compare=False)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ModelServerError(f"cannot bind a model server to {host}:{port}: {exc}") from exc
    return sock


def start_model_server(
    *,
    model_dir: str,
    task_type: str,
    base_model_path: str | None = None,
    port: int | None = None,
    log_path: str | os.PathLike,
    host: str = "127.0.0.1",
    device: str | None = None,
    max_new_tokens_limit: int | None = None,
    max_generation_seconds: float | None = None,
    env: dict[str, str] | None = None,
    engine: bool = False,
) -> ModelServerHandle:
    """Start `tuneyard.serving.server` for one model (forked from the preloaded
    server, see `tuneyard.processes.spawn_module`); returns at once.

    `port` None picks a free one. Follow with `wait_ready`. `env` adds to (and
    overrides) this process's environment, e.g. CUDA_VISIBLE_DEVICES. `engine`
    serves `model_dir` as an engine's base (LoRA adapters added at run time).
    """
    sock = _bind(host, port or 0)
    bound_port = sock.getsockname()[1]
    argv = ["--model-dir", str(model_dir), "--task", task_type, "--host", host,
            "--fd", FD_PLACEHOLDER]
    if base_model_path:
        argv += ["--base-model-path", str(base_model_path)]
    if device:
        argv += ["--device", device]
    if engine:
        argv += ["--engine"]
    if max_new_tokens_limit:
        argv += ["--max-new-tokens-limit", str(max_new_tokens_limit)]
    if max_generation_seconds:
        argv += ["--max-generation-seconds", str(max_generation_seconds)]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                 **(env or {})}
    try:
        process = spawn_module("tuneyard.serving.server", argv, log_path=log_path,
                               env=child_env, sock=sock)
    finally:
        sock.close()  # the child holds its own copy
    url_host = f"[{host}]" if ":" in host else host
    return ModelServerHandle(pid=process.pid, port=bound_port, url=f"http://{url_host}:{bound_port}",
                             log_path=str(log_path), process=process)


def log_tail(handle: ModelServerHandle, max_bytes: int = 4000) -> str:
    if not handle.log_path:
        return ""
    try:
        with open(handle.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def is_running(handle: ModelServerHandle) -> bool:
    """Whether the server process (its leader) is still alive."""
    if handle.process is not None:
        return handle.process.poll() is None
    try:
        os.kill(handle.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_ready(handle: ModelServerHandle, timeout: float = 300.0) -> dict:
    """Poll `/health` until 200; return its body.

    Raises `ModelServerError` with the log tail as soon as the process exits
    (a load failure), or after `timeout` seconds (the process is left running:
    stop it with `stop_model_server`).
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
        while True:
            if not is_running(handle):
                code = handle.process.returncode if handle.process is not None else "?"
                raise ModelServerError(
                    f"the model server exited (status {code}) before it was ready:\n"
                    f"{log_tail(handle)}")
            try:
                response = http.get(f"{handle.url}/health")
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass  # not listening yet: still loading
            if time.monotonic() >= deadline:
                raise ModelServerUnavailable(
                    f"the model server was not ready after {timeout:.0f}s:\n{log_tail(handle)}")
            time.sleep(0.2)


def stop_model_server(handle: ModelServerHandle, *, grace: float = 10.0) -> None:
    """SIGTERM the server's process group; SIGKILL it after `grace` seconds.

    Returns once the group is gone. Safe to call on a server already stopped.
    """
    target = handle.process if handle.process is not None else handle.pid
    if not stop_group(target, grace=grace):
        raise ModelServerError(
            f"model server process group {handle.pid} did not exit after SIGKILL")
