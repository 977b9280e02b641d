"""The worker: claim a job, run it in a child process, supervise it.

The child runs in its own process group, so cancel, timeout and shutdown end
it and everything it started, and a crash or OOM in training never takes the
worker (or the API server hosting an embedded worker) down with it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tuneyard import logs, metrics, policy
from tuneyard.config import Settings
from tuneyard.db import engine_for, make_engine
from tuneyard.processes import ForkedChild, spawn_module, stop_group
from tuneyard.services.events import add_event, emit, status_message
from tuneyard.status import JobStatus
from tuneyard.tables import TrainingJob
from tuneyard.training.params import parse_parameters
from tuneyard.worker.claim import (
    claim_evaluation,
    claim_job,
    heartbeat,
    release_evaluation,
    take_evaluation,
)
from tuneyard.worker.evaluations import EvaluationSupervisor

log = logging.getLogger("tuneyard.worker")

# The child's exit code when it has already recorded the job's final status.
EXIT_RECORDED = 3
GRACE_SECONDS = 2.0  # a cancelled child may finish its step before being killed


class Worker:
    def __init__(self, settings: Settings, *, name: str | None = None):
        self.settings = settings
        # Its own engine (and pool): the API's requests never wait on the
        # worker's connections, nor the worker's heartbeats on theirs.
        self.engine = make_engine(settings.resolved_database_url)
        self.worker_id = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.lapse = settings.heartbeat_seconds * 3
        self.current: ForkedChild | None = None  # the running child, if any

    # -- one job ---------------------------------------------------------
    def _child_env(self) -> dict[str, str]:
        # A child reads the same configuration as this worker, whatever its source.
        return dict(os.environ, TUNEYARD_HOME=str(self.settings.home),
                    TUNEYARD_DATABASE_URL=self.settings.resolved_database_url,
                    TUNEYARD_STORAGE_URL=self.settings.resolved_storage_url,
                    **metrics.child_env())

    def _spawn(self, job_id: str, log_path: Path) -> ForkedChild:
        # With a Ray cluster the child is the driver of a Ray Train run (worker.ray_train).
        module = ("tuneyard.worker.ray_train" if self.settings.ray_address
                  else "tuneyard.worker.child")
        return spawn_module(module, [job_id, self.worker_id],
                            log_path=log_path, env=self._child_env())

    def _finish(self, job_id: str, status: str, error: str | None = None) -> None:
        """Record a final status, unless the child already recorded one."""
        with Session(self.engine) as session:
            values = {"status": status, "finished_at": int(time.time()),
                      "updated_at": int(time.time())}
            if error:
                values["error"] = error
            changed = session.execute(update(TrainingJob).where(
                TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING,
                TrainingJob.worker_id == self.worker_id).values(**values)).rowcount
            if changed:
                level, message = status_message(status, error)
                add_event(session, job_id, "status", message, level=level,
                          data={"status": str(status)})
            session.commit()

    def _requeue(self, job_id: str) -> None:
        with Session(self.engine) as session:
            session.execute(update(TrainingJob).where(
                TrainingJob.id == job_id, TrainingJob.worker_id == self.worker_id,
                TrainingJob.status == JobStatus.RUNNING,
            ).values(status=JobStatus.PENDING, worker_id=None, heartbeat_at=None))
            session.commit()

    def _spawn_evaluation(self, job_id: str) -> ForkedChild:
        """The job's one evaluation process (see tuneyard.worker.evaluate)."""
        env = self._child_env()
        if (os.cpu_count() or 1) <= 4:
            # On a small CPU machine, evaluation beside training would otherwise
            # oversubscribe the cores and slow training down more than needed.
            env.setdefault("OMP_NUM_THREADS", "1")
        module = ("tuneyard.worker.ray_evaluate" if self.settings.ray_address
                  else "tuneyard.worker.evaluate")
        return spawn_module(module, [job_id],
                            log_path=self.settings.home / "logs" / f"{job_id}.eval.log", env=env)

    def _evaluations(self, job_id: str) -> EvaluationSupervisor:
        return EvaluationSupervisor(
            engine=self.engine, job_id=job_id, worker_id=self.worker_id,
            timeout_seconds=self.settings.evaluation_timeout_seconds,
            heartbeat_seconds=self.settings.heartbeat_seconds, spawn=self._spawn_evaluation)

    def _release_evaluation(self, job_id: str) -> None:
        try:
            with Session(self.engine) as session:
                release_evaluation(session=session, job_id=job_id, worker_id=self.worker_id)
        except SQLAlchemyError:
            log.warning("job %s: could not release its evaluation claim", job_id)

    def run_job(self, job_id: str, stop: threading.Event) -> None:
        log_path = self.settings.home / "logs" / f"{job_id}.log"
        with Session(self.engine) as session:
            take_evaluation(session=session, job_id=job_id, worker_id=self.worker_id)
            project_id = session.scalar(select(TrainingJob.project_id)
                                        .where(TrainingJob.id == job_id))
        proc = self.current = self._spawn(job_id, log_path)
        log.info("job %s: started child pid %s (log %s)", job_id, proc.pid, log_path)
        # One evaluation process works through the baseline and every checkpoint
        # beside training, then drains what is left after it (see
        # tuneyard.worker.evaluations for restarts, limits and failures).
        evaluation = self._evaluations(job_id)
        exit_handled = False
        last_beat = 0.0
        try:
            while True:
                evaluating = evaluation.tick(training_running=not exit_handled)
                if proc.poll() is not None and not exit_handled:
                    # Settle the job's status first: the evaluation process
                    # drains what is pending once the job is no longer Running.
                    exit_handled = True
                    if not self._after_exit(job_id, proc.returncode, log_path):
                        return  # requeued: the next attempt evaluates what is left
                    continue
                if exit_handled and not evaluating:
                    return
                if stop.wait(0.25):
                    # Shutting down: the job stays Running; once our heartbeat
                    # lapses another worker resumes it from its latest checkpoint.
                    stop_group(proc, grace=GRACE_SECONDS)
                    return
                if proc.poll() is not None:
                    continue  # training ended; only evaluations are left
                if time.monotonic() - last_beat < min(1.0, self.settings.heartbeat_seconds):
                    continue
                last_beat = time.monotonic()
                try:
                    if not self._beat(job_id, proc):
                        return
                except SQLAlchemyError:
                    # A transient DB error must not kill the training: it goes
                    # on, and the next beat tries again (a lapse long enough
                    # for another worker to claim the job is seen then).
                    log.warning("job %s: heartbeat failed; retrying", job_id, exc_info=True)
        finally:
            stop_group(proc, grace=0.5)
            evaluation.stop()
            self._release_evaluation(job_id)
            self._remove_if_deleted(job_id, project_id)

    def _remove_if_deleted(self, job_id: str, project_id: str | None) -> None:
        """A job deleted while its processes ran: remove what they wrote after the
        deletion removed its files (one stopped mid-write cannot clean up itself)."""
        from tuneyard.storage import keys, open_store

        try:
            with Session(self.engine) as session:
                if project_id is None or session.get(TrainingJob, job_id) is not None:
                    return
            ref = SimpleNamespace(id=job_id, project_id=project_id)
            open_store(self.settings.resolved_storage_url).delete_prefix(keys.job_prefix(ref))
        except Exception:  # noqa: BLE001 - a cleanup; never the worker's end
            log.warning("job %s: could not remove the files of the deleted job", job_id,
                        exc_info=True)

    def _beat(self, job_id: str, proc: ForkedChild) -> bool:
        """Heartbeat, then act on cancel, timeout or a lost claim; False: stop watching."""
        with Session(self.engine) as session:
            alive = heartbeat(session=session, job_id=job_id, worker_id=self.worker_id)
            job = session.get(TrainingJob, job_id)
            if job is None or job.worker_id != self.worker_id:
                stop_group(proc, grace=0.5)  # deleted, or claimed by someone else
                return False
            if not alive:
                return True  # the child recorded a final status and is exiting
            if job.cancel_requested:
                stop_group(proc, grace=GRACE_SECONDS)
                self._finish(job_id, JobStatus.CANCELLED)
                return False
            # The training loop stops itself at the deadline and records
            # TimedOut; this ends a child that could not (stuck loading).
            limit = parse_parameters(job.hyper_parameters).timeout_seconds
            if policy.timed_out(timeout_seconds=limit, started_at=job.started_at,
                                now=time.time(), grace=policy.TIMEOUT_GRACE_SECONDS):
                stop_group(proc, grace=0.5)
                self._finish(job_id, policy.TIMED_OUT, policy.timeout_reason(limit))
                return False
        return True

    # -- evaluations a crash left unfinished -------------------------------
    def run_evaluation(self, job_id: str, stop: threading.Event) -> None:
        """Finish the evaluations of a finished job (claimed with claim_evaluation)."""
        evaluation = self._evaluations(job_id)
        log.info("job %s: finishing the evaluations a crash left", job_id)
        try:
            while evaluation.tick(training_running=False):
                if stop.wait(0.25):
                    return
        finally:
            evaluation.stop()
            self._release_evaluation(job_id)

    def recover_evaluations(self, stop: threading.Event) -> None:
        """A thread beside the training loop: one leftover evaluation at a time."""
        while not stop.is_set():
            job_id = None
            try:
                with Session(self.engine) as session:
                    job_id = claim_evaluation(session=session, worker_id=self.worker_id,
                                              lapse_seconds=self.lapse)
                if job_id:
                    self.run_evaluation(job_id, stop)
            except Exception:  # keep going; the DB may be briefly away
                log.exception("evaluation recovery error")
            if not job_id:
                stop.wait(max(self.settings.worker_poll_seconds, 1.0))

    def _after_exit(self, job_id: str, code: int, log_path: Path) -> bool:
        """Settle the job after its training process ended; False when requeued."""
        if code in (0, EXIT_RECORDED):
            # The child recorded Success/Failed/Cancelled itself; make sure a
            # status is final even if it could not.
            self._finish(job_id, JobStatus.FAILED, "the training process ended without a status")
            return True
        why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if code == -signal.SIGKILL:
            why += " (out of memory?)"
        with Session(self.engine) as session:
            job = session.get(TrainingJob, job_id)
            attempts = job.attempts if job else self.settings.job_max_attempts
        if attempts < self.settings.job_max_attempts:
            log.warning("job %s: training process %s; resuming from its latest checkpoint",
                        job_id, why)
            emit(self.engine, job_id, "error", f"the training process {why}; resuming from "
                 "the latest checkpoint", level="warn", data={"attempt": attempts})
            self._requeue(job_id)
            return False
        self._finish(job_id, JobStatus.FAILED,
                     f"the training process crashed {attempts} times (last: {why}); "
                     f"see {log_path}")
        return True

    # -- the loop --------------------------------------------------------
    def sweep(self) -> None:
        """Jobs cancelled while their worker was gone end as Cancelled."""
        with Session(self.engine) as session:
            session.execute(update(TrainingJob).where(
                TrainingJob.status == JobStatus.RUNNING, TrainingJob.cancel_requested.is_(True),
                TrainingJob.heartbeat_at < time.time() - self.lapse,
            ).values(status=JobStatus.CANCELLED, finished_at=int(time.time())))
            session.commit()

    def run_once(self, stop: threading.Event | None = None) -> str | None:
        stop = stop or threading.Event()
        self.sweep()
        started = time.perf_counter()
        with Session(self.engine) as session:
            job_id = claim_job(session=session, worker_id=self.worker_id,
                               lapse_seconds=self.lapse,
                               max_attempts=self.settings.job_max_attempts)
        metrics.METRICS.claim_seconds.observe(time.perf_counter() - started)
        if job_id:
            metrics.METRICS.claims.inc()
            with logs.log_context(job_id=job_id):
                self.run_job(job_id, stop)
        return job_id

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s polling for jobs", self.worker_id)
        self._delete_pruned_files()
        recovery = threading.Thread(target=self.recover_evaluations, args=(stop,),
                                    name="tuneyard-evaluations", daemon=True)
        recovery.start()
        try:
            self._run(stop)
        finally:
            recovery.join(timeout=30)
            self.engine.dispose()

    def _delete_pruned_files(self) -> None:
        """Files of checkpoints pruned just before a crash (see services.retention)."""
        from tuneyard.services.retention import delete_pruned_files
        from tuneyard.storage import open_store

        try:
            with Session(self.engine) as session:
                count = delete_pruned_files(
                    session=session, store=open_store(self.settings.resolved_storage_url))
            if count:
                log.info("deleted the files of %s pruned checkpoints a crash left", count)
        except Exception:  # noqa: BLE001 - a cleanup; the worker runs regardless
            log.exception("could not delete the files of pruned checkpoints")

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job_id = self.run_once(stop)
            except Exception:  # keep the worker alive; the DB may be briefly away
                log.exception("worker loop error")
                job_id = None
            if not job_id:
                stop.wait(self.settings.worker_poll_seconds)


def pending_count(settings: Settings) -> int:
    with Session(engine_for(settings.resolved_database_url)) as session:
        return len(list(session.scalars(
            select(TrainingJob.id).where(TrainingJob.status == JobStatus.PENDING))))


def start_embedded(settings: Settings) -> tuple[threading.Thread, threading.Event]:
    """A worker thread inside the API server process (`tuneyard serve`)."""
    stop = threading.Event()
    thread = threading.Thread(target=Worker(settings).run, args=(stop,),
                              name="tuneyard-worker", daemon=True)
    thread.start()
    return thread, stop


def run_worker(settings: Settings, *, metrics_port: int | None = None) -> None:
    """`tuneyard worker`: run until SIGINT/SIGTERM (metrics on `metrics_port` if given)."""
    from tuneyard.db import upgrade

    logs.configure()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    if metrics_port is not None:
        # This worker's claims and its jobs' processes; no database gauges
        # (every API replica reports those already).
        metrics.serve_metrics(metrics_port)
        log.info("metrics on http://0.0.0.0:%s/metrics", metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Worker(settings).run(stop)
