"""P10: cold starts.

- serve: `tuneyard serve --no-worker` on a seeded home, from the process's start
  until `/healthz` answers, against a bare `python -c "import torch"`;
- deployment: `POST …/deployments` of a published checkpoint (P1's model) until
  the first token of a completion (`max_new_tokens=1`) comes back through the
  API, against a fresh `python` that imports transformers, loads the same
  checkpoint and generates one token.

Both sides of each pair start cold in the same sense (new processes, files in
the page cache after a warm-up); one torch thread on every side, as in P6.
The deployment pair runs once the server and its children are idle: `serve`
starts the forkserver that preloads torch/transformers/peft in the background
(processes.warm_forkserver), and a user deploys some time after starting it.
Rounds alternate baseline and tuneyard; each ratio is the median over rounds,
and the figure is the worse of the two.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import REPO, Result, load_average, median, scratch_dir, wait_idle
from bench.completion import FINAL, ONE_THREAD, PROMPT, publish_model
from bench.fixtures import BENCH_KEY, build_lm, lm_shape, tuneyard_server

IMPORT_TORCH = [sys.executable, "-c", "import torch"]


def bare_first_token(model_dir: Path) -> list[str]:
    code = (
        "import torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(model_dir)!r})\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(model_dir)!r}, dtype=torch.float32)\n"
        f"ids = tok({PROMPT!r}, return_tensors='pt')['input_ids']\n"
        "with torch.inference_mode():\n"
        "    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),\n"
        "                   max_new_tokens=1, do_sample=False, pad_token_id=tok.pad_token_id)\n"
    )
    return [sys.executable, "-c", code]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def settle(pid: int) -> None:
    """Wait until the server and its children (the preloading forkserver) are idle, so
    neither side of the next pair runs beside its start-up work."""
    for member in process_tree(pid):
        wait_idle(member, quiet=1.0, timeout=120)


def timed_process(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def serve_until_healthy(home: Path, log_dir: Path, round_no: int) -> tuple[float, object]:
    """Seconds from `tuneyard serve` starting to /healthz answering (server left running)."""
    context = tuneyard_server(home, log_path=log_dir / f"p10-serve-{round_no}.log",
                              env=ONE_THREAD)
    start = time.perf_counter()
    server = context.__enter__()
    return time.perf_counter() - start, (context, server)


def first_token(server_url: str, project: str, job: str) -> dict:
    """Create a deployment and time it to the first token of a completion."""
    with httpx.Client(base_url=server_url, headers={"X-API-Key": BENCH_KEY},
                      timeout=600) as http:
        base = f"/v1/projects/{project}/deployments"
        start = time.perf_counter()
        created = http.post(base, json={"training_job_id": job, "checkpoint": 1,
                                        "name": f"cold-{time.monotonic_ns()}"})
        created.raise_for_status()
        deployment = created.json()["id"]
        try:
            deadline = time.monotonic() + 600
            while (status := http.get(f"{base}/{deployment}").json()["status"]) not in FINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"deployment still {status} after 600s")
                time.sleep(0.02)
            deployed = time.perf_counter()
            if status != "Deployed":
                raise RuntimeError(f"deployment ended {status}")
            answer = http.post(f"{base}/{deployment}/completions",
                               json={"prompt": PROMPT, "max_new_tokens": 1,
                                     "do_sample": False})
            answer.raise_for_status()
            end = time.perf_counter()
        finally:
            http.delete(f"{base}/{deployment}")
    return {"seconds": end - start, "to_deployed_s": deployed - start,
            "first_completion_s": end - deployed}


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    model_dir = build_lm(lm_shape(quick))
    rounds = 1 if quick else 3
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD}
    home = scratch_dir("p10")
    serve_s, torch_s, deploy_runs, bare_s = [], [], [], []
    try:
        project, job = publish_model(home, model_dir)
        if not quick:  # warm-up: the page cache, for both sides (quick: only prove it runs)
            timed_process(IMPORT_TORCH, env)
            timed_process(bare_first_token(model_dir), env)
        for i in range(rounds):
            torch_s.append(timed_process(IMPORT_TORCH, env))
            seconds, (context, server) = serve_until_healthy(home, log_dir, i)
            try:
                serve_s.append(seconds)
                settle(server.pid)  # a user deploys some time after the server started
                bare_s.append(timed_process(bare_first_token(model_dir), env))
                deploy_runs.append(first_token(server.url, project, job))
            finally:
                context.__exit__(None, None, None)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    serve_ratio = median([s / t for s, t in zip(serve_s, torch_s, strict=True)])
    deploy_s = [d["seconds"] for d in deploy_runs]
    deploy_ratio = median([d / b for d, b in zip(deploy_s, bare_s, strict=True)])
    worse = "serve" if serve_ratio >= deploy_ratio else "deployment"
    ty, base = ((median(serve_s), median(torch_s)) if worse == "serve"
                else (median(deploy_s), median(bare_s)))
    result = Result(
        id="P10", measure="cold start: serve → /healthz, deployment create → first token (s)",
        unit="s", tuneyard=ty, baseline=base, ratio=max(serve_ratio, deploy_ratio),
        goal_op="<=", goal=1.5,
        baseline_name="python -c 'import torch'; a fresh python loading the checkpoint and "
                      "generating one token",
        details={"worse": worse, "rounds": rounds,
                 "serve": {"tuneyard_s": serve_s, "import_torch_s": torch_s,
                           "ratio": serve_ratio},
                 "deployment": {"runs": deploy_runs, "bare_s": bare_s, "ratio": deploy_ratio},
                 "load_average": load_average()},
    )
    d0 = deploy_runs[len(deploy_runs) // 2]
    result.limits = (
        f"serve answers /healthz after {median(serve_s):.2f}s against {median(torch_s):.2f}s "
        f"for `import torch` (ratio {serve_ratio:.2f}); a deployment gives its first token "
        f"{median(deploy_s):.2f}s after it is created (to Deployed {d0['to_deployed_s']:.2f}s, "
        f"then the first completion {d0['first_completion_s']:.2f}s) against "
        f"{median(bare_s):.2f}s for a fresh python loading the checkpoint and generating "
        f"(ratio {deploy_ratio:.2f})."
    )
    return [result]
