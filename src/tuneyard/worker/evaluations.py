"""Supervising one job's evaluation process (tuneyard.worker.evaluate).

The worker keeps one evaluation process per job while there is work for it:
beside training, after training (the drain), and for a finished job whose
evaluations a crash left unfinished (claimed with `claim_evaluation`). This
module is that supervision, so nothing is ever left `running` or `pending`:

- a process that dies is recorded on the checkpoint it held (`failed`, with
  why); it is started again for what is left, until it has died
  `MAX_EVALUATION_CRASHES` times, after which what is left fails with why;
- each evaluation (the baseline or one checkpoint) has a wall-clock limit
  (`evaluation_timeout_seconds`): past it the process group is stopped and
  that evaluation fails, and a fresh process goes on with the rest;
- the evaluation claim is heartbeated; a claim lost to another worker stops
  the process. The process itself dies with its worker (PR_SET_PDEATHSIG,
  see tuneyard.processes.die_with_parent).

Nothing here imports torch: it runs in the worker (often the API server).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tuneyard.processes import ForkedChild, stop_group
from tuneyard.status import TestStatus
from tuneyard.tables import Checkpoint, TrainingJob, now
from tuneyard.worker.claim import evaluation_heartbeat, reset_cut_short

log = logging.getLogger("tuneyard.worker")

MAX_EVALUATION_CRASHES = 3  # an evaluation process that keeps dying is not restarted forever
CHECK_SECONDS = 1.0  # how often the DB is asked what the evaluation is doing
BASELINE = "baseline"


def describe_exit(code: int) -> str:
    why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    if code == -signal.SIGKILL:
        why += " (out of memory?)"
    return why


class EvaluationSupervisor:
    """One job's evaluation process, advanced by `tick()` from the worker's loop."""

    def __init__(self, *, engine, job_id: str, worker_id: str, timeout_seconds: float,
                 heartbeat_seconds: float, spawn: Callable[[str], ForkedChild]):
        self.engine, self.job_id, self.worker_id = engine, job_id, worker_id
        self.timeout_seconds, self.heartbeat_seconds = timeout_seconds, heartbeat_seconds
        self.spawn = spawn
        self.process: ForkedChild | None = None
        self.crashes = 0
        self.finished = False  # gave up, or lost the claim: nothing more to do here
        self._target: str | None = None  # what the process is evaluating now
        self._since = 0.0  # since when (monotonic)
        self._last_check = 0.0
        self._last_beat = 0.0

    # -- the state machine -------------------------------------------------
    def tick(self, *, training_running: bool) -> bool:
        """Advance; True while evaluation work remains (or may still come)."""
        if self.finished:
            return False
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            if code != 0:
                self.crashes += 1
                self._fail_running(f"the evaluation process {describe_exit(code)}")
        clock = time.monotonic()
        if clock - self._last_check < CHECK_SECONDS:
            return True
        self._last_check = clock
        try:
            if clock - self._last_beat >= self.heartbeat_seconds:
                self._last_beat = clock
                with Session(self.engine) as session:
                    if not evaluation_heartbeat(session=session, job_id=self.job_id,
                                                worker_id=self.worker_id):
                        log.warning("job %s: evaluation claim lost; stopping", self.job_id)
                        self.finished = True
                        self.stop()
                        return False
            if self.process is not None:
                self._check_limit(clock)
                return True
            if not self._work_left():
                return training_running  # more checkpoints may still come
            if self.crashes >= MAX_EVALUATION_CRASHES:
                self._fail_left(f"the evaluation process died {self.crashes} times; "
                                "see the job's .eval.log")
                self.finished = True
                return False
            self.process = self.spawn(self.job_id)
            self._target = None
            log.info("job %s: evaluation process pid %s", self.job_id, self.process.pid)
        except SQLAlchemyError:
            # The DB may be briefly away: the process goes on; ask again later.
            log.warning("job %s: evaluation check failed", self.job_id, exc_info=True)
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace=0.5)
            self.process = None

    # -- the wall-clock limit ---------------------------------------------
    def _current_target(self, session: Session) -> str | None:
        job = session.get(TrainingJob, self.job_id)
        if job is None:
            return None
        if job.baseline_test_results is None:
            return BASELINE  # the process prepares the test set, then the baseline
        number = session.scalar(select(Checkpoint.number).where(
            Checkpoint.job_id == self.job_id, Checkpoint.test_status == TestStatus.RUNNING)
            .order_by(Checkpoint.number).limit(1))
        return None if number is None else str(number)

    def _check_limit(self, clock: float) -> None:
        with Session(self.engine) as session:
            target = self._current_target(session)
        if target != self._target:
            self._target, self._since = target, clock
            return
        if target is None or clock - self._since <= self.timeout_seconds:
            return
        log.warning("job %s: evaluation of %s exceeded %ss; stopping it",
                    self.job_id, target, self.timeout_seconds)
        self.stop()
        message = (f"the evaluation exceeded its wall-clock limit of "
                   f"{self.timeout_seconds:g} s (evaluation_timeout_seconds)")
        with Session(self.engine) as session:
            if target == BASELINE:
                job = session.get(TrainingJob, self.job_id)
                if job is not None and job.baseline_test_results is None:
                    job.baseline_test_results = {"status": TestStatus.FAILED, "error": message}
            else:
                session.execute(update(Checkpoint).where(
                    Checkpoint.job_id == self.job_id, Checkpoint.number == int(target),
                    Checkpoint.test_status == TestStatus.RUNNING)
                    .values(test_status=TestStatus.FAILED, test_error=message,
                            updated_at=now()))
            session.commit()
        self._target = None

    # -- bookkeeping -------------------------------------------------------
    def _work_left(self) -> bool:
        """Called with no process running: a `running` evaluation now is an
        orphan (its failure could not be recorded) and starts over."""
        with Session(self.engine) as session:
            reset_cut_short(session, self.job_id)
            session.commit()
            job = session.get(TrainingJob, self.job_id)
            if job is None:
                return False
            if job.baseline_test_results is None:
                return True
            return session.scalar(select(Checkpoint.number).where(
                Checkpoint.job_id == self.job_id, Checkpoint.pruned.is_(False),
                Checkpoint.test_status.in_((TestStatus.PENDING, TestStatus.RUNNING)))
                .limit(1)) is not None

    def _fail_running(self, message: str) -> None:
        """A dead process fails what it held (a crash mid-baseline retries it)."""
        try:
            with Session(self.engine) as session:
                session.execute(update(Checkpoint).where(
                    Checkpoint.job_id == self.job_id,
                    Checkpoint.test_status == TestStatus.RUNNING)
                    .values(test_status=TestStatus.FAILED, test_error=message,
                            updated_at=now()))
                session.commit()
        except SQLAlchemyError:
            log.warning("job %s: could not record a failed evaluation", self.job_id,
                        exc_info=True)

    def _fail_left(self, message: str) -> None:
        with Session(self.engine) as session:
            job = session.get(TrainingJob, self.job_id)
            if job is not None and job.baseline_test_results is None:
                job.baseline_test_results = {"status": TestStatus.FAILED, "error": message}
            session.execute(update(Checkpoint).where(
                Checkpoint.job_id == self.job_id,
                Checkpoint.test_status.in_((TestStatus.PENDING, TestStatus.RUNNING)))
                .values(test_status=TestStatus.FAILED, test_error=message, updated_at=now()))
            session.commit()
