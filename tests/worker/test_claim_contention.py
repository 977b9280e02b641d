"""Claims under contention: 8 worker processes on PostgreSQL drain 200 queued jobs
through the real claim function (no training); each job is claimed exactly once.
The rate is printed for docs/scale-out.md (bench/claims.py measures it alone)."""

from __future__ import annotations

import pytest
from bench.claims import measure, seed
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import _postgres_url, fresh_database_url

pytestmark = pytest.mark.postgres

WORKERS, JOBS = 8, 200


def test_eight_workers_claim_two_hundred_jobs_exactly_once(tmp_path):
    from tuneyard.db import make_engine, upgrade
    from tuneyard.tables import TrainingJob

    if _postgres_url() is None:
        pytest.skip("contention is measured on PostgreSQL (the second pass)")
    url = fresh_database_url(tmp_path)
    upgrade(url)
    seed(url, JOBS)
    result = measure(url, workers=WORKERS, jobs=JOBS)
    every = [job for got in result["claimed"].values() for job in got]
    assert sorted(every) == [f"tr-{i:06d}" for i in range(JOBS)]  # each exactly once
    assert sum(1 for got in result["claimed"].values() if got) >= 2  # it was contended
    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.execute(select(TrainingJob.id, TrainingJob.worker_id,
                                      TrainingJob.status, TrainingJob.attempts)).all()
    engine.dispose()
    owner = {job: name for name, got in result["claimed"].items() for job in got}
    assert all(status == "Running" and attempts == 1 and worker == owner[job]
               for job, worker, status, attempts in rows)
    print(f"\n{JOBS} jobs, {WORKERS} worker processes on PostgreSQL: "
          f"{result['claims_per_second']:.0f} claims/s ({result['seconds']:.2f} s)")
