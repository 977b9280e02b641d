"""P7: list latency with 10,000 jobs / 100,000 checkpoints in the database,
against the same lists with 100 jobs / 1,000 checkpoints (SQLite, the default).

The user's view is the same in both: one project with 100 jobs of 10
checkpoints each (evaluated, loss curves of 50 points). The large database
adds 99 projects of other users with as many jobs each. What is measured is
how the lists a user makes slow down as the database grows around them:

    GET /v1/projects                                   (1 project)
    GET /v1/projects/{p}/training-jobs                 (100 jobs)
    GET /v1/projects/{p}/training-jobs/{j}/checkpoints (10 checkpoints)

Both servers run at once (`tuneyard serve`, each seeded directly through the
tables with bulk inserts); one client alternates requests between them, so
load on the machine hits both alike. Medians count; the figure is the worst
list's ratio.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from bench.common import Result, cpu_split, load_average, median, percentile, ratio_of, scratch_dir
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
)

CHECKPOINTS_PER_JOB = 10


def seed(home: Path, *, projects: int, jobs_per_project: int) -> tuple[dict, dict]:
    """Seed the database; (list name -> path, counts)."""
    from tuneyard.tables import Checkpoint, TrainingJob

    engine = open_db(sqlite_url(home))
    start = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        owner = seed_owner(session)
        mine = add_project(session, owner)
        owners = [owner] + [seed_owner(session, key=f"ty_other-{i:04d}-{'x' * 32}",
                                       name=f"other-{i}") for i in range(1, projects)]
        all_projects = [mine] + [add_project(session, o, name="other") for o in owners[1:]]
        jobs, checkpoints = [], []
        for project, project_owner in zip(all_projects, owners, strict=True):
            for j in range(jobs_per_project):
                job = job_row(project.id, project_owner.id, name=f"job-{j}")
                jobs.append(job)
                checkpoints += [checkpoint_row(job["id"], project.id, n)
                                for n in range(1, CHECKPOINTS_PER_JOB + 1)]
        bulk_insert(session, TrainingJob, jobs)
        bulk_insert(session, Checkpoint, checkpoints)
        session.commit()
        first_job = jobs[0]["id"]
    engine.dispose()
    paths = {
        "projects": "/v1/projects",
        "training-jobs": f"/v1/projects/{mine.id}/training-jobs",
        "checkpoints": f"/v1/projects/{mine.id}/training-jobs/{first_job}/checkpoints",
    }
    return paths, {"jobs": len(jobs), "checkpoints": len(checkpoints),
                   "seed_seconds": round(time.perf_counter() - start, 1)}


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    jobs_per_project = 10 if quick else 100
    large_projects = 10 if quick else 100
    warmup, reps = (3, 15) if quick else (10, 100)
    server_cpus, _client_cpus = cpu_split()
    homes = {"small": scratch_dir("p7-small"), "large": scratch_dir("p7-large")}
    try:
        seeded = {
            "small": seed(homes["small"], projects=1, jobs_per_project=jobs_per_project),
            "large": seed(homes["large"], projects=large_projects,
                          jobs_per_project=jobs_per_project),
        }
        latencies: dict[str, dict[str, list[float]]] = {
            size: {name: [] for name in seeded[size][0]} for size in homes}
        with contextlib.ExitStack() as stack:
            clients = {}
            for size, home in homes.items():
                server = stack.enter_context(tuneyard_server(
                    home, log_path=log_dir / f"p7-{size}.log", cpus=server_cpus))
                clients[size] = stack.enter_context(httpx.Client(
                    base_url=server.url, headers={"X-API-Key": BENCH_KEY}, timeout=60))
            for i in range(warmup + reps):
                for name in seeded["small"][0]:
                    for size in ("small", "large") if i % 2 else ("large", "small"):
                        start = time.perf_counter()
                        response = clients[size].get(seeded[size][0][name])
                        elapsed = time.perf_counter() - start
                        response.raise_for_status()
                        if i >= warmup:
                            latencies[size][name].append(elapsed * 1e3)
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    lists = {}
    for name in latencies["small"]:
        small, large = latencies["small"][name], latencies["large"][name]
        # Requests alternate between the databases: pair each with its neighbour.
        lists[name] = {"small_ms": median(small), "large_ms": median(large),
                       "small_p99_ms": percentile(small, 99), "large_p99_ms": percentile(large, 99),
                       "ratio": median([b / a for a, b in zip(small, large, strict=True)]),
                       "ratio_of_medians": ratio_of(median(large), median(small))}
    worst = max(lists, key=lambda n: lists[n]["ratio"])
    w = lists[worst]
    small_counts, large_counts = seeded["small"][1], seeded["large"][1]
    result = Result(
        id="P7",
        measure=(f"list latency, {large_counts['jobs']:,} jobs / "
                 f"{large_counts['checkpoints']:,} ckpts in DB (ms, worst list)"),
        unit="ms", tuneyard=w["large_ms"], baseline=w["small_ms"], ratio=w["ratio"],
        goal_op="<=", goal=2.0,
        baseline_name=(f"same lists with {small_counts['jobs']:,} jobs / "
                       f"{small_counts['checkpoints']:,} ckpts"),
        details={"worst_list": worst, "lists": lists, "reps": reps,
                 "small_db": small_counts, "large_db": large_counts,
                 "load_average": load_average()},
    )
    result.limits = (
        f"the {worst} list takes {w['large_ms']:.1f} ms with the large database against "
        f"{w['small_ms']:.1f} ms: a query that scans rather than seeks. Check its plan "
        "(EXPLAIN QUERY PLAN) and add the composite index it needs."
    )
    return [result]
