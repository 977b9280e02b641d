"""P4: `GET /v1/projects/{p}/training-jobs/{j}/checkpoints` of a job with 200
checkpoints (each evaluated: two signed URLs and metrics), requests/s at 32
concurrent clients, with p50/p99 latency.

tuneyard runs as a user runs it (`tuneyard serve --no-worker`, SQLite, the
home's defaults) with its database seeded directly through its tables. The
baseline is a bare FastAPI route returning the very bytes tuneyard answered,
under the same uvicorn. Each server is pinned to one core and the load
generator (wrk, or an asyncio httpx client) to the other; rounds alternate.
After the load, the route's steps are timed in-process on the same database
(key lookup, project, job, the cached listing, and a listing rebuilt on a
cache miss) for the breakdown of what is left.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from bench.common import (
    Result,
    cpu_split,
    http_load,
    load_average,
    median,
    ratio_of,
    scratch_dir,
    wait_idle,
    wait_responsive,
)
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
FEW = 4  # clients: fewer than the DB pool's 5 connections


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
    # Quick: a tenth of the checkpoints and 4 clients, which tuneyard answers within
    # its 2 seconds even on a loaded machine (32 exhaust its DB pool: see limits).
    count, seconds, rounds, clients = ((CHECKPOINTS // 10, 2.0, 1, FEW) if quick
                                       else (CHECKPOINTS, 10.0, 2, CONNECTIONS))
    headers = {"X-API-Key": BENCH_KEY}
    home = scratch_dir("p4")
    try:
        path = seed(home, count)
        loads: dict[str, list] = {"tuneyard": [], "baseline": []}
        few: dict[str, object] = {}
        stalls: dict[str, list[float]] = {"tuneyard": [], "baseline": []}
        with tuneyard_server(home, log_path=log_dir / "p4-tuneyard.log",
                             cpus=server_cpus) as server:
            response = httpx.get(server.url + path, headers=headers, timeout=60)
            response.raise_for_status()
            body = response.content
            assert len(json.loads(body)) == count
            (home / "body.json").write_bytes(body)
            with uvicorn_app("bench.baseline_app:app", log_path=log_dir / "p4-baseline.log",
                             env={"BENCH_BODY_FILE": str(home / "body.json")},
                             cpus=server_cpus) as base:
                servers = {"tuneyard": server, "baseline": base}

                def load(name: str, connections: int, duration: float):
                    srv = servers[name]
                    try:
                        return http_load(srv.url + path, connections=connections,
                                         seconds=duration, headers=headers, cpus=client_cpus)
                    finally:
                        # Let it finish what it had accepted and answer again before
                        # anything else runs on its core; how long its next answer
                        # takes shows a server that stalls after a burst.
                        if quick:  # nothing is measured after it: spare the smoke run
                            wait_idle(srv.pid)
                        else:
                            stalls[name].append(wait_responsive(srv.url + "/healthz",
                                                                srv.pid))

                for _ in range(rounds):
                    for name in ("baseline", "tuneyard"):
                        loads[name].append(load(name, clients, seconds))
                if not quick:  # the same below the DB pool's size, for diagnosis
                    few = {name: load(name, FEW, seconds / 2) for name in ("baseline",
                                                                            "tuneyard")}
        steps = breakdown(home, path, rounds=20 if quick else 300)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if not any(b.rps for b in loads["baseline"]):
        raise RuntimeError(f"the baseline answered nothing in {seconds}s")
    # Each round loads the baseline, then tuneyard: the ratio is the median over rounds.
    paired = median([t.rps / b.rps for t, b in zip(loads["tuneyard"], loads["baseline"],
                                                     strict=True)])
    mid = {name: sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2]
           for name, runs in loads.items()}
    ty, base = mid["tuneyard"], mid["baseline"]

    def summary(load) -> dict:
        return {"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
                "answers": load.requests, "errors": load.errors}

    result = Result(
        id="P4", measure=f"GET …/checkpoints ({count}), req/s at {clients} clients",
        unit="req/s", tuneyard=ty.rps, baseline=base.rps, ratio=paired,
        goal_op=">=", goal=0.5, baseline_name="bare FastAPI route returning the same bytes",
        details={"body_bytes": len(body), "checkpoints": count,
                 "signed_urls": body.count(b"/v1/files/"), "tool": ty.tool,
                 "seconds_per_round": seconds,
                 "rounds": rounds, "pinned": {"server": server_cpus, "client": client_cpus},
                 "tuneyard": summary(ty), "baseline": summary(base),
                 "rounds_rps": {n: [r.rps for r in runs] for n, runs in loads.items()},
                 f"at_{FEW}_clients": ({n: summary(v) for n, v in few.items()}
                                       | {"ratio": ratio_of(few["tuneyard"].rps,
                                                            few["baseline"].rps)}
                                       if few else None),
                 "first_answer_after_load_s": stalls,
                 "in_process_ms": steps,
                 "load_average": load_average()},
    )
    result.limits = _limits(result, few, stalls, seconds)
    return [result]


def breakdown(home: Path, path: str, *, rounds: int) -> dict:
    """Milliseconds per step of the listing route, in-process (no HTTP)."""
    import time
    from types import SimpleNamespace

    from tuneyard.api.deps import current_user, plausible_id, project_of
    from tuneyard.config import Settings
    from tuneyard.db import make_engine
    from tuneyard.services import listing

    settings = Settings(home=home)
    engine = make_engine(sqlite_url(home))
    # A request the guard has not seen: current_user checks the key itself.
    _NO_GUARD = SimpleNamespace(scope={})
    _, _, _, project_id, _, job_id, _ = path.split("/")
    names = ("session", "api_key", "project", "job", "cached_listing", "close")
    totals = dict.fromkeys(names, 0.0)
    try:
        for i in range(rounds + 10):  # the first 10 warm up
            marks = [time.perf_counter()]
            session = Session(engine, expire_on_commit=False)
            marks.append(time.perf_counter())
            user = current_user(request=_NO_GUARD, session=session, key=BENCH_KEY,
                                token=None)
            marks.append(time.perf_counter())
            project = project_of(project_id=project_id, session=session, user=user)
            marks.append(time.perf_counter())
            plausible_id(job_id, "training job")
            job = listing.listed_job(session=session, project=project, job_id=job_id)
            marks.append(time.perf_counter())
            listing.checkpoints_json(session=session, settings=settings, job=job)
            marks.append(time.perf_counter())
            session.close()
            marks.append(time.perf_counter())
            if i >= 10:
                for name, a, b in zip(names, marks[:-1], marks[1:], strict=True):
                    totals[name] += b - a
        out = {name: total / rounds * 1000 for name, total in totals.items()}
        with Session(engine, expire_on_commit=False) as session:
            user = current_user(request=_NO_GUARD, session=session, key=BENCH_KEY,
                                token=None)
            project = project_of(project_id=project_id, session=session, user=user)
            job = listing.listed_job(session=session, project=project, job_id=job_id)
            rebuilt = []
            for _ in range(max(3, rounds // 20)):
                listing.clear()
                start = time.perf_counter()
                listing.checkpoints_json(session=session, settings=settings, job=job)
                rebuilt.append(time.perf_counter() - start)
        out["listing_rebuilt"] = median(rebuilt) * 1000
        return out
    finally:
        engine.dispose()


def _limits(result: Result, few: dict, stalls: dict, seconds: float) -> str:
    d = result.details
    ty = d["tuneyard"]
    stall = max(stalls["tuneyard"], default=0.0)
    if ty["rps"] == 0:
        text = (f"tuneyard answered no request within the {seconds:.0f} s at "
                f"{CONNECTIONS} clients")
    else:
        text = (f"{ty['rps']:.1f} req/s (p50 {ty['p50_ms']:.0f} ms, p99 {ty['p99_ms']:.0f} "
                f"ms) against {result.baseline:.0f} req/s")
    if ty["rps"] == 0 or ty["errors"] or stall > 2:
        text += (
            ". Under concurrency the server stalls: "
            + (f"{ty['errors']} requests failed, " if ty["errors"] else "")
            + (f"its next answer after the burst took {stall:.0f} s, " if stall > 2 else "")
            + "the signature of a DB connection pool smaller than FastAPI's 40-thread "
            "threadpool (a request holds its connection from the API-key lookup to the "
            "session's close; the log shows `QueuePool limit ... connection timed out`): "
            "size the pool to the threadpool in `db.make_engine`"
        )
    if few:
        f = d[f"at_{FEW}_clients"]
        text += (f". With {FEW} clients it serves {f['tuneyard']['rps']:.1f} req/s against "
                 f"{f['baseline']['rps']:.0f} (ratio {f['ratio']:.3f})")
    ms = d.get("in_process_ms") or {}
    if ms:
        text += (
            f". The listing itself is served from cached bytes (a hit costs "
            f"{ms['cached_listing']:.2f} ms in-process against {ms['listing_rebuilt']:.1f} ms "
            "to rebuild it: ORM rows, signed URLs, pydantic, JSON), after the checks every "
            f"request makes, timed in-process on the same database: API-key lookup "
            f"{ms['api_key']:.2f} ms (the key row, then its user: two queries), project "
            f"{ms['project']:.2f} ms, job {ms['job']:.2f} ms, session {ms['session']:.2f} ms. "
            "Those ~4 SQLite round trips through the ORM, the ASGI stack and one threadpool "
            "hop are what a bare route returning bytes does not do. What would close it: "
            "an in-memory cache of the authorisation (API key to user, project ownership, "
            "job in project: each invalidated on revocation or deletion) so a cached "
            "listing costs one primary-key read of the job's checkpoints_version"
        )
    return text
