"""Claims under contention: N worker processes drain M queued jobs through the real
claim function (no training), each job must be claimed exactly once; prints claims/s.

    python -m bench.claims --database-url postgresql+psycopg://…/db [--workers 8] [--jobs 200]

The database is emptied and migrated first: point it at a scratch database.
tests/worker/test_claim_contention.py runs the same measurement (8 × 200) on the
test PostgreSQL and checks exactly-once; the figure backs docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time


def seed(url: str, jobs: int) -> None:
    """`jobs` Pending jobs in one project, in an empty, migrated database."""
    from tuneyard.db import make_engine, session_scope
    from tuneyard.services.keys import create_user
    from tuneyard.tables import Project, TrainingJob

    engine = make_engine(url)
    with session_scope(engine) as session:
        user = create_user(session=session, name="bench")
        session.add(Project(id="ms-bench", name="bench", owner_id=user.id))
        session.flush()
        session.add_all(TrainingJob(id=f"tr-{i:06d}", project_id="ms-bench", name=f"j{i}",
                                    base_model="m", task_type="text-generation",
                                    created_by=user.id, hyper_parameters={})
                        for i in range(jobs))
    engine.dispose()


def _drain(url: str, name: str, start, results) -> None:
    """One worker process: claim until nothing is left; report what it got and when."""
    from sqlalchemy.orm import Session

    from tuneyard.db import make_engine
    from tuneyard.worker.claim import claim_job

    engine = make_engine(url)
    with Session(engine) as session:  # connect before the clock starts
        session.connection()
    start.wait()
    began = time.perf_counter()
    got = []
    while True:
        with Session(engine) as session:
            job_id = claim_job(session=session, worker_id=name, lapse_seconds=3600)
        if job_id is None:
            break
        got.append(job_id)
    results.put((name, got, began, time.perf_counter()))
    engine.dispose()


def measure(url: str, *, workers: int, jobs: int) -> dict:
    """Drain `jobs` with `workers` processes; returns claims, who got what, claims/s."""
    context = multiprocessing.get_context("fork")  # children reuse imported modules
    start, results = context.Barrier(workers + 1), context.Queue()
    processes = [context.Process(target=_drain, args=(url, f"w{i}", start, results))
                 for i in range(workers)]
    for process in processes:
        process.start()
    start.wait()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    began = min(r[2] for r in reports)
    ended = max(r[3] for r in reports)
    claimed = {name: got for name, got, _, _ in reports}
    total = sum(len(got) for got in claimed.values())
    return {"claimed": claimed, "seconds": ended - began,
            "claims_per_second": total / (ended - began)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    from sqlalchemy import create_engine, text

    from tuneyard.db import normalize_url, upgrade

    engine = create_engine(normalize_url(args.database_url))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(args.database_url)
    seed(args.database_url, args.jobs)
    result = measure(args.database_url, workers=args.workers, jobs=args.jobs)
    every = sorted(j for got in result["claimed"].values() for j in got)
    assert every == sorted(set(every)) and len(every) == args.jobs, "a job was claimed twice"
    print(f"{args.jobs} jobs, {args.workers} worker processes: "
          f"{result['claims_per_second']:.0f} claims/s ({result['seconds']:.2f} s)")


if __name__ == "__main__":
    main()
