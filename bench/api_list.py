"""P4: `GET /v1/projects/{p}/training-jobs/{j}/checkpoints` of a job with 200
checkpoints (each evaluated: two signed URLs and metrics), requests/s at 32
concurrent clients, with p50/p99 latency.

tuneyard runs as a user runs it (`tuneyard serve --no-worker`, SQLite, the
home's defaults) with its database seeded directly through its tables. The
baseline is a bare FastAPI route returning the very bytes tuneyard answered,
under the same uvicorn. Each server is pinned to one core and the load
generator (wrk, or an asyncio httpx client) to the other; rounds alternate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from bench.common import Result, cpu_split, http_load, load_average, ratio_of, scratch_dir
from bench.fixtures import (
    BENCH_KEY,
    add_project,
    bulk_insert,
    checkpoint_row,
    job_row,
    open_db,
    seed_owner,
    sqlite_url,
    tuneyard_server,
    uvicorn_app,
)

CHECKPOINTS = 200
CONNECTIONS = 32


def seed(home: Path, count: int = CHECKPOINTS) -> str:
    """A job with `count` evaluated checkpoints; returns the list's path."""
    from tuneyard.tables import Checkpoint, TrainingJob

    engine = open_db(sqlite_url(home))
    with Session(engine, expire_on_commit=False) as session:
        owner = seed_owner(session)
        project = add_project(session, owner)
        job = job_row(project.id, owner.id, name="p4")
        bulk_insert(session, TrainingJob, [job])
        bulk_insert(session, Checkpoint, [checkpoint_row(job["id"], project.id, n)
                                          for n in range(1, count + 1)])
        session.commit()
        path = f"/v1/projects/{project.id}/training-jobs/{job['id']}/checkpoints"
    engine.dispose()
    return path


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    server_cpus, client_cpus = cpu_split()
    # Quick: a tenth of the checkpoints, so that 32 concurrent requests finish in time.
    count, seconds, rounds = (CHECKPOINTS // 10, 1.0, 1) if quick else (CHECKPOINTS, 10.0, 2)
    headers = {"X-API-Key": BENCH_KEY}
    home = scratch_dir("p4")
    try:
        path = seed(home, count)
        loads: dict[str, list] = {"tuneyard": [], "baseline": []}
        with tuneyard_server(home, log_path=log_dir / "p4-tuneyard.log",
                             cpus=server_cpus) as url:
            response = httpx.get(url + path, headers=headers, timeout=60)
            response.raise_for_status()
            body = response.content
            assert len(json.loads(body)) == count
            (home / "body.json").write_bytes(body)
            with uvicorn_app("bench.baseline_app:app", log_path=log_dir / "p4-baseline.log",
                             env={"BENCH_BODY_FILE": str(home / "body.json")},
                             cpus=server_cpus) as base_url:
                # Diagnosis: how the server's floor (a DB ping, no body) holds up
                # under concurrency.
                floor = {c: http_load(url + "/healthz", connections=c, seconds=seconds / 2,
                                      cpus=client_cpus).rps for c in (1, CONNECTIONS)}
                for _ in range(rounds):
                    for name, target in (("baseline", base_url), ("tuneyard", url)):
                        load = http_load(target + path, connections=CONNECTIONS,
                                         seconds=seconds, headers=headers, cpus=client_cpus)
                        if load.errors or not load.requests:
                            raise RuntimeError(f"P4 {name}: {load.errors} failed requests, "
                                               f"{load.requests} answered in {seconds}s")
                        loads[name].append(load)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    best = {name: max(runs, key=lambda r: r.rps) for name, runs in loads.items()}
    ty, base = best["tuneyard"], best["baseline"]
    result = Result(
        id="P4", measure=f"GET …/checkpoints ({count}), req/s at {CONNECTIONS} clients",
        unit="req/s", tuneyard=ty.rps, baseline=base.rps, ratio=ratio_of(ty.rps, base.rps),
        goal_op=">=", goal=0.5, baseline_name="bare FastAPI route returning the same bytes",
        details={"body_bytes": len(body), "tool": ty.tool, "seconds_per_round": seconds,
                 "rounds": rounds, "pinned": {"server": server_cpus, "client": client_cpus},
                 "tuneyard": {"rps": ty.rps, "p50_ms": ty.p50_ms, "p99_ms": ty.p99_ms},
                 "baseline": {"rps": base.rps, "p50_ms": base.p50_ms, "p99_ms": base.p99_ms},
                 "all_rps": {n: [r.rps for r in runs] for n, runs in loads.items()},
                 "tuneyard_healthz_rps_by_clients": floor,
                 "load_average": load_average()},
    )
    result.limits = (
        f"{ty.rps:.0f} req/s (p50 {ty.p50_ms:.0f} ms, p99 {ty.p99_ms:.0f} ms) against "
        f"{base.rps:.0f} req/s (p50 {base.p50_ms:.1f} ms). Two causes. (1) Concurrency: "
        "the SQLite engine keeps SQLAlchemy's default pool (5 connections + 10 overflow, "
        "overflow ones closed when returned), so beyond 5 concurrent requests each one "
        "opens a new connection and reruns the PRAGMAs; even `/healthz` falls from "
        f"{floor[1]:.0f} req/s at 1 client to {floor[CONNECTIONS]:.0f} at {CONNECTIONS} "
        "(a 40-connection pool, the threadpool's size, kept it flat in a trial). "
        "(2) Work per request: 400 signed URLs, each calling `Settings.signing_secret()`, "
        "which mkdirs the home and re-reads `secret.key` from disk; 200 ORM rows with "
        "their JSON; 200 pydantic models validated again as the response model. What "
        "would close it: size the SQLite pool to the threadpool (db.make_engine); read "
        "the signing secret once; cache the serialized listing per job (keyed on the "
        "newest updated_at and a URL-expiry bucket) and return its bytes."
    )
    return [result]
