"""`tuneyard demo` (what `make demo` runs), end to end with the real binary: it
starts its own server, trains, deploys, completes, and leaves nothing running."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port

pytestmark = pytest.mark.slow


def _processes_with_home(home: Path) -> list[str]:
    """Every live process started with TUNEYARD_HOME=home: the server, its job and
    evaluation children, its model servers."""
    marker = f"TUNEYARD_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if "\nState:\tZ" not in status:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


def _metric(out: str, name: str) -> tuple[float, float]:
    """(best checkpoint's value, baseline's) from the demo's comparison line."""
    found = re.search(rf"{name} ([-\d.e+]+) \(baseline ([-\d.e+]+)\)", out)
    assert found, f"no {name} comparison in the output:\n{out}"
    return float(found.group(1)), float(found.group(2))


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_demo_end_to_end(cli, tmp_path):
    home = tmp_path / "demo-home"
    port = free_port()
    started = time.monotonic()
    run = cli("demo", "--port", str(port), "--home", str(home), timeout=900)
    elapsed = time.monotonic() - started
    assert run.code == 0, f"demo exited {run.code}:\n{run.out}\n{run.err}"
    assert "Traceback" not in run.out + run.err

    # Completions were printed, and most are right on prompts it never trained on
    # (the base model gets none right).
    right = re.search(r"(\d+)/(\d+) completions: right", run.out)
    assert right, run.out
    assert int(right.group(1)) >= int(right.group(2)) // 2, run.out
    assert re.search(r"reverse: [a-z]{3} =>\s+│\s+[a-z]{3}", run.out), run.out

    # The best checkpoint beat the untrained baseline on the test set.
    em, em_base = _metric(run.out, "exact_match")
    loss, loss_base = _metric(run.out, "loss")
    assert em > em_base and em >= 0.5, run.out
    assert loss < loss_base / 2, run.out

    # It says where things are and what to try next.
    assert f"http://127.0.0.1:{port}" in run.out
    assert "admin.key" in run.out and (home / "admin.key").is_file()
    assert "tuneyard login --url" in run.out and "tuneyard complete tuneyard-demo" in run.out
    assert "Demo finished in" in run.out

    # Nothing is left running: not the server, nor a job, evaluation or model server.
    assert not _answers(f"http://127.0.0.1:{port}")
    assert not (home / "server.pid").exists()
    assert _processes_with_home(home.resolve()) == []
    print(f"demo wall time: {elapsed:.0f}s")


def test_demo_refuses_a_port_held_by_something_else(cli, tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        run = cli.fails("demo", "--port", str(port), "--home", str(tmp_path / "h"))
    assert f"port {port} is in use" in run.err
    assert not (tmp_path / "h").exists()


def test_demo_needs_the_key_of_a_server_it_reuses(cli, server, tmp_path):
    port = server.url.rsplit(":", 1)[1]
    run = cli.fails("demo", "--port", port, "--home", str(tmp_path / "elsewhere"))
    assert "already running" in run.err and "admin.key" in run.err
