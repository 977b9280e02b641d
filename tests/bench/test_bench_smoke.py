"""The benchmark suite runs: every benchmark, in its seconds-long mode, prints
its ratio and lands in the results. The figures themselves mean nothing here
(tiny sizes on a shared machine); `make bench` measures them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = [f"P{i}" for i in (*range(1, 9), *range(10, 14))]  # P9: bench/s3_transfer.py

SAMPLE_WRK = """\
Running 10s test @ http://127.0.0.1:8000/v1/x
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10s   300.00ms   2.90s    70.00%
    Req/Sec    15.00      5.00    30.00     80.00%
  Latency Distribution
     50%    2.05s
     75%    2.30s
     90%  850.00ms
     99%    2.80s
  150 requests in 10.01s, 35.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:     14.99
Transfer/sec:      3.50MB
"""


def test_wrk_output_is_parsed():
    from bench.common import parse_wrk

    load = parse_wrk(SAMPLE_WRK)
    assert (load.requests, load.p50_ms, load.p99_ms) == (150, 2050.0, 2800.0)
    assert load.seconds == pytest.approx(10.01)
    assert load.rps == pytest.approx(147 / 10.01)  # successful responses only
    assert load.errors == 4  # non-2xx and timeouts; a read error is a closed keep-alive


def test_ratios_pass_against_their_goal():
    from bench.common import Result

    def result(ratio: float, op: str, goal: float) -> Result:
        return Result(id="P0", measure="m", unit="s", tuneyard=ratio, baseline=1.0,
                      ratio=ratio, goal_op=op, goal=goal, baseline_name="b")

    assert result(0.96, ">=", 0.95).passed and not result(0.9, ">=", 0.95).passed
    assert result(0.01, "<=", 0.02).passed and not result(3.0, "<=", 0.02).passed
    assert not result(float("nan"), "<=", 2.0).passed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_benchmark_runs_and_prints_its_ratio(tmp_path: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=590)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for figure in FIGURES:
        assert re.search(rf"^\s+{figure}: ratio \d+\.\d+", done.stdout, re.MULTILINE), \
            f"{figure} printed no ratio:\n{output[-6000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["id"] for r in results["results"]] == FIGURES
    assert all(r["quick"] and r["error"] is None for r in results["results"])
    assert results["machine"]["cores"] >= 1
    table = (tmp_path / "RESULTS.md").read_text()
    assert all(f"| {figure} |" in table for figure in FIGURES)
