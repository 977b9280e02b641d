"""P13: a training job's speed while 32 clients work the API and a deployment
answers, against the same job alone; with zero 5xx and zero lost writes.

One `tuneyard serve` as a user runs it (embedded worker, SQLite, local store)
trains the same small job twice (the built-in tiny LM, the same data, steps
and seed): first alone, then while CLIENTS concurrent clients list projects,
jobs, datasets and checkpoints, create and delete projects, and ask the
deployment (a checkpoint of the first job, loaded before the second starts)
for completions. Each client waits THINK seconds between requests, as a
script or a person does; without a pause, 32 clients on a 2-core machine
measure only how the cores are shared.

Steps/s come from the job's own loss curve (a point every `logging_steps`,
10 as by default, with its timestamp), between its first and last point, so
model loading and start-up are not counted. Ratio: loaded / alone (goal >= 0.8).

Writes are checked after the load: every project a client created and did
not delete is listed and readable, every deleted one answers 404; any 5xx
or lost write is reported in the details and makes the figure an error.

    python -m bench.load [--quick]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx

from bench.common import Result, load_average, scratch_dir
from bench.fixtures import BENCH_KEY, tuneyard_server

CLIENTS = 32
THINK = 0.5  # seconds between one client's requests
DATA = "".join(json.dumps({"prompt": f"say {c}:", "completion": f" {c}{c}{c}"}) + "\n"
               for c in "abcdefghijklmnopqrstuvwxyz").encode()


def plan(quick: bool) -> dict:
    if quick:
        return {"steps": 30, "clients": 4}
    return {"steps": 3000, "clients": CLIENTS}


class Api:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, headers={"X-API-Key": BENCH_KEY}, timeout=120,
                                 trust_env=False)

    def ok(self, method: str, path: str, **kw) -> dict | list | None:
        resp = self.http.request(method, path, **kw)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def wait(self, path: str, done, *, timeout: float = 1800) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.ok("GET", path)
            if done(value):
                return value
            time.sleep(0.5)
        raise RuntimeError(f"{path} never reached its state: {value}")


def steps_per_second(job: dict) -> tuple[float, int]:
    points = sorted(job["training_loss"], key=lambda p: p["step"])
    if len(points) < 2:
        raise RuntimeError(f"the job logged {len(points)} loss points")
    first, last = points[0], points[-1]
    return (last["step"] - first["step"]) / (last["timestamp"] - first["timestamp"]), \
        last["step"] - first["step"]


def train(api: Api, project: str, dataset: str, steps: int, name: str) -> str:
    body = {"base_model": "tuneyard-tiny-lm", "name": name, "train_dataset_id": dataset,
            "train_test_split_ratio": 0.2,
            "parameters": {"max_steps": steps, "per_device_train_batch_size": 4,
                           "learning_rate": 0.001, "logging_steps": 10, "max_seq_length": 32,
                           "save_strategy": "steps", "save_steps": steps, "seed": 7}}
    return api.ok("POST", f"/v1/projects/{project}/training-jobs", json=body)["id"]


async def client_loop(index: int, url: str, stop: asyncio.Event, project: str, job: str,
                      deployment: str, tally: dict) -> None:
    """One client: a random mix of reads, writes and completions until `stop`."""
    rng = random.Random(index)
    mine: dict[str, bool] = {}  # project id -> still exists
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": BENCH_KEY}, timeout=120,
                                 trust_env=False) as http:
        while not stop.is_set():
            roll = rng.random()
            if roll < 0.15:
                kind, req = "create", http.post("/v1/projects",
                                                json={"name": f"load-{index}-{len(mine)}"})
            elif roll < 0.25 and any(mine.values()):
                victim = rng.choice([p for p, alive in mine.items() if alive])
                kind, req = "delete", http.delete(f"/v1/projects/{victim}")
            elif roll < 0.35:
                kind, req = "complete", http.post(
                    f"/v1/projects/{project}/deployments/{deployment}/completions",
                    json={"prompt": "say q:", "max_new_tokens": 4})
            else:
                path = rng.choice(["/v1/projects", f"/v1/projects/{project}",
                                   f"/v1/projects/{project}/training-jobs",
                                   f"/v1/projects/{project}/datasets",
                                   f"/v1/projects/{project}/training-jobs/{job}",
                                   f"/v1/projects/{project}/deployments"])
                kind, req = "list", http.get(path)
            start = time.perf_counter()
            try:
                resp = await req
            except httpx.HTTPError as exc:
                tally["transport_errors"].append(f"{kind}: {exc!r}")
                continue
            tally["latency"].setdefault(kind, []).append(time.perf_counter() - start)
            tally["count"][kind] = tally["count"].get(kind, 0) + 1
            if resp.status_code >= 500:
                tally["5xx"].append(f"{kind} {resp.status_code} {resp.text[:200]}")
            elif kind == "create" and resp.status_code == 201:
                mine[resp.json()["id"]] = True
            elif kind == "delete" and resp.status_code == 204:
                mine[victim] = False
            elif resp.status_code >= 400:
                tally["4xx"].append(f"{kind} {resp.status_code} {resp.text[:200]}")
            await asyncio.sleep(THINK * rng.uniform(0.5, 1.5))
    tally["projects"].update(mine)


async def load(url: str, clients: int, stop: asyncio.Event, **kw) -> dict:
    tally = {"count": {}, "latency": {}, "5xx": [], "4xx": [], "transport_errors": [],
             "projects": {}}
    await asyncio.gather(*(client_loop(i, url, stop, tally=tally, **kw)
                           for i in range(clients)))
    return tally


def lost_writes(api: Api, projects: dict[str, bool]) -> list[str]:
    """Every acknowledged create is readable, every acknowledged delete is gone."""
    lost = []
    for project, alive in projects.items():
        status = api.http.get(f"/v1/projects/{project}").status_code
        if alive and status != 200:
            lost.append(f"created {project} is gone (GET {status})")
        if not alive and status != 404:
            lost.append(f"deleted {project} is back (GET {status})")
    return lost


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    cfg = plan(quick)
    home = scratch_dir("load")
    with tuneyard_server(home, log_path=log_dir / "p8-server.log",
                         env={"TUNEYARD_EMBEDDED_WORKER": "true", "OMP_NUM_THREADS": "1"},
                         worker=True) as server:
        api = Api(server.url)
        project = api.ok("POST", "/v1/projects", json={"name": "p8"})["id"]
        dataset = api.ok("POST", f"/v1/projects/{project}/datasets",
                         files={"file": ("p.jsonl", DATA)}, data={"name": "pattern"})["id"]
        final = ("Success", "Failed", "Cancelled", "TimedOut")
        alone = train(api, project, dataset, cfg["steps"], "alone")
        alone_job = api.wait(f"/v1/projects/{project}/training-jobs/{alone}",
                             lambda j: j["status"] in final)
        if alone_job["status"] != "Success":
            raise RuntimeError(f"the job alone ended {alone_job['status']}: "
                               f"{alone_job.get('error')}")
        alone_rate, alone_steps = steps_per_second(alone_job)
        last = api.ok("GET", f"/v1/projects/{project}/training-jobs/{alone}/checkpoints")[-1]
        deployment = api.ok("POST", f"/v1/projects/{project}/deployments",
                            json={"training_job_id": alone, "checkpoint": last["checkpoint"]})
        api.wait(f"/v1/projects/{project}/deployments/{deployment['id']}",
                 lambda d: d["status"] in ("Deployed", "Failed"))
        # Let the alone job's evaluations drain: they would slow the next one.
        api.wait(f"/v1/projects/{project}/training-jobs/{alone}/checkpoints",
                 lambda cs: all(c.get("test_status") in ("done", "failed") for c in cs))

        loaded = train(api, project, dataset, cfg["steps"], "loaded")
        api.wait(f"/v1/projects/{project}/training-jobs/{loaded}",
                 lambda j: j["status"] in final or len(j["training_loss"]) > 0)

        async def under_load() -> dict:
            stop = asyncio.Event()
            task = asyncio.create_task(load(server.url, cfg["clients"], stop, project=project,
                                            job=loaded, deployment=deployment["id"]))
            while True:
                job = await asyncio.to_thread(
                    api.ok, "GET", f"/v1/projects/{project}/training-jobs/{loaded}")
                if job["status"] in final:
                    break
                await asyncio.sleep(0.5)
            stop.set()
            return await task

        began = time.monotonic()
        tally = asyncio.run(under_load())
        seconds = time.monotonic() - began
        loaded_job = api.ok("GET", f"/v1/projects/{project}/training-jobs/{loaded}")
        if loaded_job["status"] != "Success":
            raise RuntimeError(f"the loaded job ended {loaded_job['status']}: "
                               f"{loaded_job.get('error')}")
        loaded_rate, loaded_steps = steps_per_second(loaded_job)
        lost = lost_writes(api, tally["projects"])
    requests = sum(tally["count"].values())
    details = {
        "steps_per_s_alone": round(alone_rate, 2), "steps_per_s_loaded": round(loaded_rate, 2),
        "steps_measured": [alone_steps, loaded_steps], "clients": cfg["clients"],
        "think_s": THINK, "load_seconds": round(seconds, 1), "requests": requests,
        "requests_by_kind": tally["count"],
        "p50_ms_by_kind": {k: round(sorted(v)[len(v) // 2] * 1e3, 1)
                           for k, v in tally["latency"].items()},
        "status_5xx": len(tally["5xx"]), "unexpected_4xx": len(tally["4xx"]),
        "transport_errors": len(tally["transport_errors"]),
        "writes_checked": len(tally["projects"]), "lost_writes": len(lost),
        "examples": (tally["5xx"] + tally["4xx"] + tally["transport_errors"] + lost)[:5],
        "load_average_end": load_average(),
    }
    problems = (len(tally["5xx"]) + len(tally["transport_errors"]) + len(lost)
                + len(tally["4xx"]))
    ratio = loaded_rate / alone_rate
    print(f"  P13 steps/s alone {alone_rate:.2f}, under load {loaded_rate:.2f} "
          f"(ratio {ratio:.3f}); {requests} requests from {cfg['clients']} clients, "
          f"{len(tally['5xx'])} 5xx, {len(lost)} lost writes of {len(tally['projects'])}",
          flush=True)
    return [Result(
        id="P13", measure="training steps/s with 32 API clients + a deployment, vs alone",
        unit="steps/s", tuneyard=loaded_rate, baseline=alone_rate, ratio=ratio,
        goal_op=">=", goal=0.8, baseline_name="the same job alone", details=details,
        error=(f"{problems} failed requests or lost writes: {details['examples']}"
               if problems else None),
        limits=("" if ratio >= 0.8 else
                "the API server, the model server, the training child and the load "
                "generator share the machine's cores; steps slow down by the CPU the "
                "requests take"))]


if __name__ == "__main__":
    from bench.common import CACHE

    quick = "--quick" in sys.argv
    logs = CACHE / "logs" / "p8"
    logs.mkdir(parents=True, exist_ok=True)
    for result in run(quick=quick, log_dir=logs):
        print(json.dumps(result.to_json(), indent=2))
