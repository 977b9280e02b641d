"""P6: completion request latency on a deployment, against `model.generate` on
the same weights and parameters in-process.

The model is P1's (42M parameters); requests are greedy, 32 new tokens, the
same prompt. Two tuneyard paths, the first that exists counts:

- the full API (`POST /v1/projects/{p}/deployments`, then
  `…/deployments/{id}/completions` with the API key) when the server has the
  deployments routes: the checkpoint is published with the worker's own code
  (`publish_checkpoint` + `DbEvents.checkpoint`) and deployed by the server;
- the model server the deployments run (`start_model_server` +
  `ModelServerClient.complete`), always measured.

The baseline tokenizes, calls `model.generate` (greedy, same budget) and
decodes, in this process. Requests alternate baseline/tuneyard after a
warm-up; medians count.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import Result, load_average, median, scratch_dir
from bench.fixtures import BENCH_KEY, build_lm, lm_shape

PROMPT = "the quick brown fox jumps over the lazy dog and then"
NEW_TOKENS = 32
FINAL = ("Deployed", "Failed", "Cancelled", "TimedOut")
# One torch thread on both sides (the model servers inherit it through the API
# server's environment): on a shared 2-core machine, two OpenMP threads turn any
# other load into stalls of seconds per generation, and the ratio into noise.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


class InProcess:
    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model.eval()

    def complete(self, prompt: str) -> tuple[str, int]:
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with self.torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=self.torch.ones_like(ids),
                                      max_new_tokens=NEW_TOKENS, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)


def alternate(base_call, ty_call, *, warmup: int, reps: int) -> tuple[list, list, list]:
    """(baseline seconds, tuneyard seconds, [(baseline answer, tuneyard answer)])."""
    base_s, ty_s, answers = [], [], []
    for i in range(warmup + reps):
        start = time.perf_counter()
        b = base_call()
        mid = time.perf_counter()
        t = ty_call()
        end = time.perf_counter()
        if i >= warmup:
            base_s.append(mid - start)
            ty_s.append(end - mid)
            answers.append((b, t))
    return base_s, ty_s, answers


def model_server_path(model_dir: Path, baseline: InProcess, *, log_dir: Path, warmup: int,
                      reps: int) -> dict:
    from tuneyard.serving.process import (
        ModelServerClient,
        start_model_server,
        stop_model_server,
        wait_ready,
    )

    handle = start_model_server(model_dir=str(model_dir), task_type="text-generation",
                                log_path=log_dir / "p6-model-server.log",
                                env={"HF_HUB_OFFLINE": "1", **ONE_THREAD})
    try:
        wait_ready(handle, timeout=300)
        with ModelServerClient(handle.url) as client:
            def call() -> tuple[str, int]:
                answer = client.complete(PROMPT, max_new_tokens=NEW_TOKENS)
                return answer["text"], answer["completion_tokens"]

            base_s, ty_s, answers = alternate(lambda: baseline.complete(PROMPT), call,
                                              warmup=warmup, reps=reps)
    finally:
        stop_model_server(handle)
    return {"baseline_s": base_s, "tuneyard_s": ty_s,
            "same_text": all(b[0] == t[0] for b, t in answers),
            "tokens": {"baseline": answers[0][0][1], "tuneyard": answers[0][1][1]}}


def has_deployments_api() -> bool:
    return importlib.util.find_spec("tuneyard.api.routes.deployments") is not None


def publish_model(home: Path, model_dir: Path) -> tuple[str, str]:
    """Publish the model as checkpoint 1 of a finished job; (project id, job id)."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from bench.fixtures import running_job
    from tuneyard.checkpoints.reader import read_manifest
    from tuneyard.checkpoints.writer import publish_checkpoint
    from tuneyard.storage.local import LocalStore
    from tuneyard.tables import TrainingJob
    from tuneyard.worker.child import DbEvents

    # The base model is registered in the home's catalog, as an operator adds a local model.
    (home / "models.yaml").write_text(
        f"models:\n  - name: bench-lm\n    type: completion\n    source: {model_dir}\n")
    engine, job = running_job(home)
    root = home / "work" / "checkpoints"
    root.mkdir(parents=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    for entry in model_dir.iterdir():
        shutil.copy2(entry, staging / entry.name)
    path = publish_checkpoint(staging_dir=staging, checkpoints_root=root, number=1, step=1,
                              epoch=1.0, base_model="bench-lm", hyper_parameters={},
                              extra={"task_type": "text-generation", "is_lora": False,
                                     "job_id": job.id})
    events = DbEvents(engine=engine, store=LocalStore(home / "artifacts"), job=job,
                      workdir=home / "work", parent_pid=os.getppid())
    events.checkpoint(1, path, read_manifest(path))
    with Session(engine, expire_on_commit=False) as session:
        session.execute(update(TrainingJob).where(TrainingJob.id == job.id)
                        .values(status="Success", progress=100))
        session.commit()
    engine.dispose()
    return job.project_id, job.id


def api_path(model_dir: Path, baseline: InProcess, *, log_dir: Path, warmup: int,
             reps: int) -> dict:
    from bench.fixtures import tuneyard_server

    home = scratch_dir("p6")
    try:
        project, job = publish_model(home, model_dir)
        with tuneyard_server(home, log_path=log_dir / "p6-tuneyard.log",
                             env=ONE_THREAD) as server, \
                httpx.Client(base_url=server.url, headers={"X-API-Key": BENCH_KEY},
                             timeout=600) as http:
            base = f"/v1/projects/{project}/deployments"
            created = http.post(base, json={"training_job_id": job, "checkpoint": 1,
                                            "name": "bench"})
            created.raise_for_status()
            deployment = created.json()["id"]
            deadline = time.monotonic() + 600
            while (status := http.get(f"{base}/{deployment}").json()["status"]) not in FINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"deployment still {status} after 600s")
                time.sleep(0.5)
            if status != "Deployed":
                raise RuntimeError(f"deployment ended {status}: "
                                   f"{http.get(f'{base}/{deployment}').json()}")

            def call() -> tuple[str, int]:
                answer = http.post(f"{base}/{deployment}/completions",
                                   json={"prompt": PROMPT, "max_new_tokens": NEW_TOKENS,
                                         "do_sample": False})
                answer.raise_for_status()
                return answer.json()["response"], -1

            try:
                base_s, ty_s, answers = alternate(lambda: baseline.complete(PROMPT), call,
                                                  warmup=warmup, reps=reps)
            finally:
                http.delete(f"{base}/{deployment}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"baseline_s": base_s, "tuneyard_s": ty_s,
            "same_text": all(b[0] == t[0] for b, t in answers)}


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    import torch

    model_dir = build_lm(lm_shape(quick))
    warmup, reps = (1, 2) if quick else (1, 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        baseline = InProcess(model_dir)
        paths = {}
        if has_deployments_api():
            paths["api"] = api_path(model_dir, baseline, log_dir=log_dir, warmup=warmup,
                                    reps=reps)
        if not (quick and paths):  # quick: one path is enough to prove it runs
            paths["model_server"] = model_server_path(model_dir, baseline, log_dir=log_dir,
                                                      warmup=warmup, reps=reps)
    finally:
        torch.set_num_threads(threads)
    headline = "api" if "api" in paths else "model_server"
    chosen = paths[headline]
    ty, base = median(chosen["tuneyard_s"]), median(chosen["baseline_s"])
    for data in paths.values():  # requests alternate: pair each with the baseline before it
        data["ratio"] = median([t / b for t, b in zip(data["tuneyard_s"], data["baseline_s"],
                                                      strict=True)])
    where = ("the full API (deployment completions route)" if headline == "api"
             else "the deployment's model server (no deployments API yet)")
    result = Result(
        id="P6", measure=f"completion latency, {NEW_TOKENS} tokens greedy (ms)", unit="ms",
        tuneyard=ty * 1e3, baseline=base * 1e3, ratio=chosen["ratio"], goal_op="<=",
        goal=1.10, baseline_name="model.generate in-process, same weights and parameters",
        details={"measured_through": where, "paths": paths, "reps": reps, "torch_threads": 1,
                 "load_average": load_average()},
    )
    parts = []
    for name, label in (("api", "through the API"), ("model_server", "the model server alone")):
        if name in paths:
            d = paths[name]
            extra = (median(d["tuneyard_s"]) - median(d["baseline_s"])) * 1e3
            parts.append(f"{label} {median(d['tuneyard_s']) * 1e3:.0f} ms against "
                         f"{median(d['baseline_s']) * 1e3:.0f} ms (ratio {d['ratio']:.3f}, "
                         f"{extra:+.0f} ms)")
    result.limits = (
        "; ".join(parts) + ". What a request adds to `model.generate`: the API server's "
        "hop (API key and deployment lookups in the DB, forwarding with "
        "AsyncModelServerClient), the model server's HTTP and JSON, the queue to its model "
        "thread, and a stop-string check on every generated token. Compare the two paths "
        "to see which hop costs it, then profile that one; the paired ratio is noisy on a "
        "shared 2-core machine, so rerun before acting on a few percent."
    )
    return [result]
