"""Claiming: concurrent workers never run the same job (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session

pytestmark = pytest.mark.postgres


def test_concurrent_claims_never_double_claim(settings):
    from tuneyard.db import make_engine, session_scope, upgrade
    from tuneyard.services.keys import create_user
    from tuneyard.tables import Project, TrainingJob
    from tuneyard.worker.claim import claim_job

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with session_scope(engine) as session:
        user = create_user(session=session, name="u")
        session.add(Project(id="ms-1", name="p", owner_id=user.id))
        session.flush()
        for i in range(40):
            session.add(TrainingJob(id=f"tr-{i:03d}", project_id="ms-1", name=f"j{i}",
                                    base_model="m", task_type="text-generation",
                                    created_by=user.id, hyper_parameters={}))
    claimed: dict[str, list[str]] = {f"w{i}": [] for i in range(4)}

    def run(name: str) -> None:
        while True:
            with Session(engine) as session:
                job_id = claim_job(session=session, worker_id=name, lapse_seconds=600)
            if job_id is None:
                return
            claimed[name].append(job_id)

    threads = [threading.Thread(target=run, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [j for jobs in claimed.values() for j in jobs]
    assert sorted(everything) == [f"tr-{i:03d}" for i in range(40)]  # each exactly once
    with Session(engine) as session:
        rows = session.query(TrainingJob).all()
        assert all(r.status == "Running" and r.attempts == 1 for r in rows)
        owner = {j: w for w, jobs in claimed.items() for j in jobs}
        assert all(r.worker_id == owner[r.id] for r in rows)
    engine.dispose()


def test_a_job_whose_heartbeat_lapsed_is_claimed_again(settings):
    import time

    from tuneyard.db import make_engine, session_scope, upgrade
    from tuneyard.services.keys import create_user
    from tuneyard.tables import Project, TrainingJob
    from tuneyard.worker.claim import claim_job, heartbeat

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with session_scope(engine) as session:
        user = create_user(session=session, name="u")
        session.add(Project(id="ms-1", name="p", owner_id=user.id))
        session.flush()
        session.add(TrainingJob(id="tr-1", project_id="ms-1", name="j", base_model="m",
                                task_type="text-generation", created_by=user.id,
                                hyper_parameters={}))
    with Session(engine) as session:
        assert claim_job(session=session, worker_id="a", lapse_seconds=1) == "tr-1"
        assert claim_job(session=session, worker_id="b", lapse_seconds=1) is None
        assert heartbeat(session=session, job_id="tr-1", worker_id="a")
    time.sleep(1.2)
    with Session(engine) as session:
        assert claim_job(session=session, worker_id="b", lapse_seconds=1) == "tr-1"
        assert not heartbeat(session=session, job_id="tr-1", worker_id="a")  # a lost it
        assert session.get(TrainingJob, "tr-1").attempts == 2
    engine.dispose()


def test_disk_space_check_fails_clearly(tmp_path):
    from tuneyard.worker.child import JobFailure, check_disk, dir_size

    (tmp_path / "w.bin").write_bytes(b"x" * 1000)
    assert dir_size(tmp_path) == 1000
    check_disk(tmp_path, needed=1000, what="training")  # plenty of room: no error
    with pytest.raises(JobFailure, match="not enough free disk space for checkpoint 3"):
        check_disk(tmp_path, needed=10**18, what="checkpoint 3")
