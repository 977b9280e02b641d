"""Evaluations cannot leak or hang: supervision, the wall-clock limit, recovery
after a crash, fair claims and the attempts limit (SQLite and PostgreSQL).

The evaluation processes here are small stand-ins started with `spawn` (no
torch): one that hangs, one that crashes, one that records results the way
tuneyard.worker.evaluate does. Real evaluations after a real crash are in
tests/e2e/test_crash_recovery.py.
"""

from __future__ import annotations

import sys
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.processes import group_alive, spawn, stop_group

pytestmark = pytest.mark.postgres

# Records every pending checkpoint of the job as evaluated, as the real one would.
FAKE_EVALUATOR = """
import sys, time
from sqlalchemy import update
from sqlalchemy.orm import Session
from tuneyard.config import get_settings
from tuneyard.db import make_engine
from tuneyard.tables import Checkpoint, TrainingJob
engine = make_engine(get_settings().resolved_database_url)
with Session(engine) as session:
    job = session.get(TrainingJob, sys.argv[1])
    job.baseline_test_results = {"status": "done", "aggregated_test_result": {}}
    session.execute(update(Checkpoint).where(Checkpoint.job_id == job.id,
                    Checkpoint.test_status == "pending")
                    .values(test_status="done", test_results={"aggregated_test_result": {}}))
    session.commit()
"""

# The start of a stand-in: `e`, an engine on the database under test.
DB = ("import os\nfrom sqlalchemy import text\nfrom tuneyard.db import make_engine\n"
      "e = make_engine(os.environ['TUNEYARD_DATABASE_URL'])\n")


@pytest.fixture
def engine(settings):
    from tuneyard.db import make_engine, upgrade

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


def add_job(engine, job_id: str, *, user: str = "user-a", status: str = "Pending",
            checkpoints: dict[int, str] | None = None, baseline: bool = True, **values):
    from tuneyard.tables import Checkpoint, Project, TrainingJob, User

    with Session(engine) as session:
        if session.get(User, user) is None:
            session.add(User(id=user, name=user))
            session.flush()
            session.add(Project(id=f"ms-{user}", name="p", owner_id=user))
            session.flush()
        session.add(TrainingJob(
            id=job_id, project_id=f"ms-{user}", name=job_id, base_model="m",
            task_type="text-generation", created_by=user, status=status,
            baseline_test_results={"status": "done"} if baseline else None,
            **{"hyper_parameters": {}, **values}))
        session.flush()
        for number, test_status in (checkpoints or {}).items():
            session.add(Checkpoint(job_id=job_id, number=number, step=number, epoch=0.0,
                                   storage_prefix=f"x/{number}/", test_status=test_status))
        session.commit()


def statuses(engine, job_id: str) -> dict[int, tuple[str, str | None]]:
    from tuneyard.tables import Checkpoint

    with Session(engine) as session:
        return {r.number: (r.test_status, r.test_error) for r in session.scalars(
            select(Checkpoint).where(Checkpoint.job_id == job_id))}


def supervisor(engine, settings, job_id: str, code: str, *, timeout: float = 60.0,
               started: list | None = None):
    """A supervisor whose evaluation process runs `code` (python -c)."""
    from tuneyard.worker.evaluations import EvaluationSupervisor

    def start(job: str):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path),
               "TUNEYARD_DATABASE_URL": settings.resolved_database_url}
        process = spawn([sys.executable, "-c", code, job], env=env)
        if started is not None:
            started.append(process)
        return process

    return EvaluationSupervisor(engine=engine, job_id=job_id, worker_id="w1",
                                timeout_seconds=timeout, heartbeat_seconds=1.0, spawn=start)


def run_until_done(sup, *, training_running: bool = False, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while sup.tick(training_running=training_running):
        assert time.monotonic() < deadline, "the supervisor never finished"
        time.sleep(0.05)


def claim_for(engine, job_id: str, worker: str = "w1") -> None:
    from tuneyard.worker.claim import take_evaluation

    with Session(engine) as session:
        take_evaluation(session=session, job_id=job_id, worker_id=worker)


def test_a_hung_evaluation_is_stopped_at_its_wall_clock_limit(engine, settings):
    add_job(engine, "tr-1", status="Success", checkpoints={1: "running"})
    claim_for(engine, "tr-1")  # resets the cut-short evaluation to pending
    started = []
    hang = (DB + "with e.begin() as c: "
            "c.execute(text(\"UPDATE checkpoints SET test_status='running'\"))\n"
            "import time; time.sleep(600)")
    sup = supervisor(engine, settings, "tr-1", hang, timeout=1.0, started=started)
    run_until_done(sup)
    status, error = statuses(engine, "tr-1")[1]
    assert status == "failed" and "wall-clock limit of 1 s" in error
    assert len(started) == 1 and not group_alive(started[0].pid)


def test_a_dying_evaluation_fails_what_it_held_and_is_not_restarted_forever(engine, settings):
    add_job(engine, "tr-1", status="Success", checkpoints={1: "pending", 2: "pending"})
    claim_for(engine, "tr-1")
    started = []
    crash = (DB + "with e.begin() as c: c.execute(text(\"UPDATE checkpoints SET "
             "test_status='running' WHERE number = "
             "(SELECT min(number) FROM checkpoints WHERE test_status='pending')\"))\n"
             "os._exit(7)")
    sup = supervisor(engine, settings, "tr-1", crash, started=started)
    run_until_done(sup)
    result = statuses(engine, "tr-1")
    assert result[1] == ("failed", "the evaluation process exited with code 7")
    assert result[2] == ("failed", "the evaluation process exited with code 7")
    assert len(started) == 2  # each crash failed one evaluation; nothing left for a third

    add_job(engine, "tr-2", status="Success", baseline=False, checkpoints={1: "pending"})
    claim_for(engine, "tr-2")
    sup = supervisor(engine, settings, "tr-2", "import os; os._exit(9)")
    run_until_done(sup)  # crashes before holding anything: bounded restarts, then all fail
    assert statuses(engine, "tr-2")[1][0] == "failed"
    assert "died 3 times" in statuses(engine, "tr-2")[1][1]


def test_a_finished_job_with_evaluations_left_is_claimed_and_finished(engine, settings):
    from tuneyard.tables import TrainingJob
    from tuneyard.worker.claim import claim_evaluation

    # What a kill -9 right after success leaves: a stale claim, some evaluations
    # pending and one marked running by the process that died.
    stale = time.time() - 60
    add_job(engine, "tr-1", status="Success", eval_worker_id="gone", eval_heartbeat_at=stale,
            checkpoints={1: "done", 2: "running", 3: "pending", 4: "pending"})
    add_job(engine, "tr-2", status="Running", checkpoints={1: "pending"})  # its worker's
    add_job(engine, "tr-3", status="Success", checkpoints={1: "done"})  # nothing left
    add_job(engine, "tr-4", status="Success", eval_worker_id="alive",
            eval_heartbeat_at=time.time() + 60, checkpoints={1: "pending"})  # owned
    with Session(engine) as session:
        assert claim_evaluation(session=session, worker_id="w1", lapse_seconds=15) == "tr-1"
        assert claim_evaluation(session=session, worker_id="w2", lapse_seconds=15) is None
        assert session.get(TrainingJob, "tr-1").eval_worker_id == "w1"
    assert statuses(engine, "tr-1")[2][0] == "pending"  # cut short: starts over
    sup = supervisor(engine, settings, "tr-1", FAKE_EVALUATOR)
    run_until_done(sup)
    assert {s for s, _ in statuses(engine, "tr-1").values()} == {"done"}


def test_claims_take_turns_across_users(engine):
    from tuneyard.worker.claim import claim_job

    for i in range(20):
        add_job(engine, f"tr-a{i:02d}", user="user-a")
    add_job(engine, "tr-b00", user="user-b")
    add_job(engine, "tr-b01", user="user-b")
    from tuneyard.tables import TrainingJob

    order = []
    with Session(engine) as session:
        for i in range(4):
            job_id = claim_job(session=session, worker_id="w", lapse_seconds=600)
            order.append(job_id)
            # One worker: the job runs (a few seconds at least) and finishes
            # before the next claim.
            job = session.get(TrainingJob, job_id)
            job.status, job.started_at = "Success", int(time.time()) - 100 + 10 * i
            session.commit()
    assert order == ["tr-a00", "tr-b00", "tr-a01", "tr-b01"]


def test_claims_prefer_the_user_with_fewer_running_jobs(engine):
    from tuneyard.worker.claim import claim_job

    for i in range(5):
        add_job(engine, f"tr-a{i}", user="user-a")
    add_job(engine, "tr-b0", user="user-b")
    with Session(engine) as session:
        assert claim_job(session=session, worker_id="w1", lapse_seconds=600) == "tr-a0"
        # user-a now runs one job; user-b none: b's only job comes next.
        assert claim_job(session=session, worker_id="w2", lapse_seconds=600) == "tr-b0"
        assert claim_job(session=session, worker_id="w3", lapse_seconds=600) == "tr-a1"


def test_a_job_whose_worker_keeps_dying_fails_after_its_attempts(engine):
    from tuneyard.tables import TrainingJob
    from tuneyard.worker.claim import claim_job

    add_job(engine, "tr-1")
    for attempt in range(1, 4):
        with Session(engine) as session:
            assert claim_job(session=session, worker_id=f"w{attempt}", lapse_seconds=1,
                             max_attempts=3) == "tr-1"
            session.get(TrainingJob, "tr-1").heartbeat_at = time.time() - 10  # worker lost
            session.commit()
    with Session(engine) as session:
        assert claim_job(session=session, worker_id="w4", lapse_seconds=1,
                         max_attempts=3) is None
        job = session.get(TrainingJob, "tr-1")
        assert job.status == "Failed" and job.attempts == 3
        assert "started 3 times" in job.error


def test_retention_marks_pruned_before_deleting_and_a_crash_leaves_no_lost_row(engine):
    from tuneyard.services.retention import after_evaluation, delete_pruned_files
    from tuneyard.storage.memory import MemoryStore
    from tuneyard.tables import Checkpoint, TrainingJob

    add_job(engine, "tr-1", status="Success",
            checkpoints={1: "done", 2: "done", 3: "done", 4: "done"},
            hyper_parameters={"keep_checkpoints": 1})
    store = MemoryStore()
    with Session(engine) as session:
        for row in session.scalars(select(Checkpoint)):
            row.storage_prefix, row.archive_key = f"ck/{row.number}/", f"ar/{row.number}.tar"
            row.test_results = {"aggregated_test_result": {"loss": str(row.number)}}
            store.put(row.storage_prefix + "checkpoint.json", b"{}")
            store.put(row.archive_key, b"tar")
        session.commit()

    class Crash(Exception):
        pass

    def crash(prefix):  # the process dies as the first deletion starts
        raise Crash(prefix)

    real_delete_prefix, store.delete_prefix = store.delete_prefix, crash
    with Session(engine) as session, pytest.raises(Crash):
        after_evaluation(session=session, store=store, job_id="tr-1")
    with Session(engine) as session:
        assert session.get(TrainingJob, "tr-1").best_checkpoint == 1
        pruned = {r.number: r.pruned for r in session.scalars(select(Checkpoint))}
    # The best and the latest are kept; the flags were committed before any file went.
    assert pruned == {1: False, 2: True, 3: True, 4: False}
    store.delete_prefix = real_delete_prefix
    with Session(engine) as session:
        assert delete_pruned_files(session=session, store=store) == 2
        assert delete_pruned_files(session=session, store=store) == 0
    assert sorted(store.list("")) == ["ar/1.tar", "ar/4.tar", "ck/1/checkpoint.json",
                                      "ck/4/checkpoint.json"]


def test_a_database_error_in_the_heartbeat_does_not_stop_the_training(engine, settings):
    """The heartbeat's database is away for a few beats: the training child goes
    on, and the worker acts on the job again once the database answers."""
    import threading

    from sqlalchemy.exc import OperationalError

    from tuneyard.tables import TrainingJob
    from tuneyard.worker.claim import claim_job
    from tuneyard.worker.loop import Worker

    settings.heartbeat_seconds = 0.2
    add_job(engine, "tr-1")
    worker = Worker(settings, name="w1")
    with Session(worker.engine) as session:
        assert claim_job(session=session, worker_id="w1", lapse_seconds=60) == "tr-1"
    children = []

    def sleeper(*_args, **_kw):  # stands in for the training child
        children.append(spawn([sys.executable, "-c", "import time; time.sleep(600)"]))
        return children[-1]

    worker._spawn = sleeper
    worker._spawn_evaluation = lambda job_id: spawn([sys.executable, "-c", "pass"])
    failures = []
    real_beat = worker._beat

    def flaky_beat(job_id, proc):
        if len(failures) < 3:
            failures.append(time.monotonic())
            raise OperationalError("UPDATE training_jobs", {}, Exception("server closed"))
        return real_beat(job_id, proc)

    worker._beat = flaky_beat
    thread = threading.Thread(target=worker.run_job, args=("tr-1", threading.Event()))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(failures) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert thread.is_alive() and children[0].poll() is None  # still training
        with Session(engine) as session:
            session.get(TrainingJob, "tr-1").cancel_requested = True
            session.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
        with Session(engine) as session:
            assert session.get(TrainingJob, "tr-1").status == "Cancelled"
        assert children[0].poll() is not None
    finally:
        for child in children:
            stop_group(child, grace=0.1)
        thread.join(timeout=30)
        worker.engine.dispose()
