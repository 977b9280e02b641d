"""Crash recovery: `kill -9` of a live `tuneyard serve` at chosen points, again
and again on one home, and every job still finishes whole.

KILLS rounds (at least 10) each wait for a point — soon after readiness,
mid-step, mid-checkpoint (files in the store, row not yet written),
mid-evaluation, mid-deploy (a model server spawned, not yet ready) — then
SIGKILL either the whole process tree or only the server process (the model
server, training and evaluation processes must then notice and exit on their
own), check that nothing of that incarnation survives, and start the server
again. At the end every job is a Success with contiguous checkpoints whose
archives match their recorded sha256, no evaluation is left pending or
running, and the deployment answers.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import LiveServer, start_server
from tests.worker.conftest import PATTERN

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

KILLS = 10
# Kill points, in order. "ready" kills at a random moment of the first two
# seconds after readiness: mid-recovery (claims, resumed children starting).
# Each other point costs a restart's whole recovery (model loading) first.
POINTS = ["ready", "step", "ready", "checkpoint", "ready", "evaluation", "ready", "deploy",
          "ready", "ready"]
ENV = {
    "TUNEYARD_HEARTBEAT_SECONDS": "0.5",  # a lost worker's job is claimed again after 1.5 s
    "TUNEYARD_WORKER_POLL_SECONDS": "0.2",
    "TUNEYARD_JOB_MAX_ATTEMPTS": "100",  # this test kills on purpose; never give up
    "OMP_NUM_THREADS": "1",
}


def descendants(root: int) -> dict[int, str]:
    """Every process below `root` (forked children in their own sessions
    included), with its start time: {pid: identity}."""
    from tuneyard.processes import process_identity

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            identity = process_identity(child)
            if identity is not None:
                found[child] = identity
                todo.append(child)
    return found


def survivors(processes: dict[int, str]) -> list[str]:
    """The processes still running: pid and command line."""
    from tuneyard.processes import process_identity

    alive = []
    for pid, identity in processes.items():
        if process_identity(pid) == identity:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    command = b"?"
                alive.append(f"{pid}: {command.decode(errors='replace')[:200]}")
    return alive


class Cluster:
    """One home, a server restarted after every kill, and an HTTP client."""

    def __init__(self, home: Path):
        self.home = home
        self.server: LiveServer | None = None
        self.http: httpx.Client | None = None
        self.start()

    def start(self) -> None:
        key = self.server.key if self.server is not None else None
        self.server = start_server(self.home, extra_env=ENV, timeout_s=120, key=key)
        if self.http is not None:
            self.http.close()
        self.http = httpx.Client(base_url=self.server.url, timeout=30, trust_env=False,
                                 headers={"X-API-Key": self.server.key})

    def get(self, path: str):
        resp = self.http.get(path)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def kill(self, *, whole_tree: bool) -> list[str]:
        """SIGKILL the server (and its whole tree, or not); return what outlived it."""
        pid = self.server.process.pid
        tree = descendants(pid)
        if whole_tree:
            for child in tree:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait()
        # The orphans of a leader-only kill end themselves (the forkserver sees
        # its owner gone and exits; its children have PR_SET_PDEATHSIG; a
        # model-resolving subprocess finishes its few seconds of work).
        deadline = time.monotonic() + 15
        while (left := survivors(tree)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def wait(predicate, *, timeout: float, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    return None


@pytest.fixture
def cluster(tmp_path):
    from tests.conftest import _postgres_url, _reset_postgres

    pg_url = _postgres_url()
    if pg_url:
        _reset_postgres(pg_url)  # rows of earlier tests must not reach this worker
    cluster = Cluster(tmp_path / "home")
    yield cluster
    cluster.http.close()
    if cluster.server.process.poll() is None:
        cluster.kill(whole_tree=True)


def test_kill_minus_nine_at_random_points_loses_nothing(cluster):
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from tuneyard.db import normalize_url
    from tuneyard.tables import Checkpoint, Deployment, TrainingJob

    rng = random.Random(11)
    engine = create_engine(normalize_url(cluster.server.env.get(
        "TUNEYARD_DATABASE_URL", f"sqlite:///{cluster.home / 'tuneyard.db'}")))
    project = cluster.http.post("/v1/projects", json={"name": "crash"}).json()
    base = f"/v1/projects/{project['id']}"
    resp = cluster.http.post(f"{base}/datasets", files={"file": ("p.jsonl", PATTERN)},
                             data={"name": "pattern"})
    assert resp.status_code == 201, resp.text
    dataset = resp.json()["id"]
    jobs: dict[str, int] = {}  # job id -> checkpoints it must end with
    deployments: list[str] = []

    def create_job(steps: int = 12, every: int = 2) -> None:
        body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
                "train_test_split_ratio": 0.2,
                "parameters": {"max_steps": steps, "per_device_train_batch_size": 4,
                               "learning_rate": 0.003, "logging_steps": 1,
                               "max_seq_length": 32, "save_strategy": "steps",
                               "save_steps": every}}
        resp = cluster.http.post(f"{base}/training-jobs", json=body)
        assert resp.status_code == 201, resp.text
        jobs[resp.json()["id"]] = steps // every

    def rows(table, *where):
        with Session(engine) as session:
            return list(session.scalars(select(table).where(*where)))

    def store_numbers(job_id) -> set[int]:
        folder = (cluster.home / "artifacts" / "projects" / project["id"] / "jobs" / job_id
                  / "checkpoints")
        return {int(p.name) for p in folder.glob("[0-9]*") if p.is_dir()} \
            if folder.is_dir() else set()

    def training_left() -> bool:
        return bool(rows(TrainingJob, TrainingJob.status.in_(("Pending", "Running"))))

    def reached(point: str):
        """A predicate true at `point`; work is added when none would reach it."""
        if point == "ready":
            return lambda: True
        if point in ("step", "checkpoint", "evaluation") and not training_left():
            create_job()
        if point == "step":
            return lambda: any(j.status == "Running" and j.training_loss
                               for j in rows(TrainingJob))
        if point == "checkpoint":
            def publishing():  # files in the store, the row not yet written
                recorded = {}
                for c in rows(Checkpoint):
                    recorded.setdefault(c.job_id, set()).add(c.number)
                return any(store_numbers(j) - recorded.get(j, set()) for j in jobs)
            return publishing
        if point == "evaluation":
            return lambda: bool(rows(Checkpoint, Checkpoint.test_status == "running"))
        if point == "deploy":
            done = [c.job_id for c in rows(Checkpoint, Checkpoint.number == 1)]
            assert done, "no checkpoint to deploy yet"
            resp = cluster.http.post(f"{base}/deployments", json={
                "training_job_id": done[0], "checkpoint": 1, "name": f"d{len(deployments)}"})
            assert resp.status_code == 201, resp.text
            deployments.append(resp.json()["id"])
            # Mid-load: its model server spawned (pid recorded), not yet serving.
            return lambda: any(d.status == "Deploying" and d.server_pid
                               for d in rows(Deployment, Deployment.id == deployments[-1]))
        raise AssertionError(point)

    create_job()
    kills: list[tuple[str, bool, bool, float]] = []  # (point, reached it, whole tree, s)
    try:
        for index, point in enumerate(POINTS[:KILLS]):
            began = time.monotonic()
            predicate = reached(point)
            hit = bool(wait(predicate, timeout=40, poll=0.01))
            time.sleep(rng.uniform(0, 2.0) if point == "ready" else rng.uniform(0, 0.02))
            whole_tree = index % 2 == 0
            left = cluster.kill(whole_tree=whole_tree)
            assert not left, f"processes outlived the kill at {point}: {left}"
            cluster.start()
            kills.append((point, hit, whole_tree, round(time.monotonic() - began, 1)))
            print("kill", kills[-1], flush=True)
        assert len(kills) >= 10
        assert sum(hit for _, hit, _, _ in kills) >= 8, kills

        # After the last restart, everything finishes.
        def settled():
            states = rows(TrainingJob)
            if any(j.status != "Success" for j in states):
                assert all(j.status in ("Pending", "Running", "Success") for j in states), \
                    [(j.id, j.status, j.error) for j in states]
                return False
            return all(c.test_status in ("done", "failed") for c in rows(Checkpoint))
        assert wait(settled, timeout=300, poll=0.5), \
            [(j.id, j.status, j.attempts) for j in rows(TrainingJob)]
        for job_id, count in jobs.items():
            checkpoints = rows(Checkpoint, Checkpoint.job_id == job_id)
            numbers = sorted(c.number for c in checkpoints)
            assert numbers == list(range(1, count + 1)), (job_id, numbers)
            assert all(c.test_status == "done" for c in checkpoints), \
                [(c.number, c.test_status, c.test_error) for c in checkpoints]
            assert sorted(store_numbers(job_id)) == numbers
            for c in checkpoints:
                data = (cluster.home / "artifacts" / c.archive_key).read_bytes()
                assert hashlib.sha256(data).hexdigest() == c.archive_sha256
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    assert any(n.endswith("checkpoint.json") for n in tar.getnames())
            assert rows(TrainingJob, TrainingJob.id == job_id)[0].baseline_test_results
        # The deployments a crash interrupted mid-load are loaded again and answer.
        for dp in deployments:
            final = wait(lambda dp=dp: (d := cluster.get(f"{base}/deployments/{dp}"))["status"]
                         in ("Deployed", "Failed") and d, timeout=120, poll=0.3)
            assert final and final["status"] == "Deployed", final
            resp = cluster.http.post(f"{base}/deployments/{dp}/completions",
                                     json={"prompt": "say a:", "max_new_tokens": 3})
            assert resp.status_code == 200, resp.text
        left = cluster.kill(whole_tree=False)  # model servers included: none outlives it
        assert not left, f"processes outlived the final kill: {left}"
    finally:
        engine.dispose()
    print(f"crash test: {len(kills)} kills, {len(jobs)} jobs, {len(deployments)} "
          f"deployments: {kills}")
