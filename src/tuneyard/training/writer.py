"""The checkpoint writer: one background thread that turns snapshots into
published checkpoints, in submission order, with at most `limit` in flight.

A checkpoint is *in flight* from the moment the loop takes a host slot for
its snapshot until its job has finished on the writer thread (files written,
published, the worker told). There are exactly `limit` slots, so a loop that
is due to checkpoint while all of them are busy waits for one
(back-pressure): host memory stays bounded at `limit` snapshots and nothing
queues without bound.

One thread runs the jobs, so they finish in the order they were submitted
(checkpoint numbers publish in order). When a job fails, the failure is
kept and every job after it is discarded unrun (a later number must not
publish past a missing one); the loop raises it as a TrainingError at its
next step (`check`), when it next waits for a slot, or when it closes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Protocol

from tuneyard.training.job import TrainingError
from tuneyard.training.snapshot import HostSlot

log = logging.getLogger("tuneyard.training")

MAX_IN_FLIGHT = 1
"""Checkpoints in flight at once by default: one snapshot of host memory."""

WRITER_NICE = 10
"""How much nicer than training the thread that serialises, hashes and stores a
checkpoint runs (Linux nice values are per thread): on a CPU-only machine the
loop's math gets the cores first, and the write fills the gaps."""


def run_nicer(fn, *, nice: int = WRITER_NICE) -> None:
    """Run `fn` on a new thread whose scheduling priority is `nice` lower, and wait.

    A new thread each time, because a thread cannot take back a lower priority
    (that needs CAP_SYS_NICE): the writer thread itself stays at the loop's
    priority, so the host copy the next optimizer step may wait for is never
    the low-priority part. Exceptions propagate to the caller.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
        except (AttributeError, OSError):
            pass  # not Linux, or not allowed: write at the same priority
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="tuneyard-checkpoint-io", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class WriteJob(Protocol):
    number: int
    slot: HostSlot

    def run(self) -> None:
        """Write and publish; runs on the writer thread."""

    def discard(self) -> None:
        """Clean up after a failure, or instead of running after an earlier one."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, TrainingError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CheckpointWriter:
    def __init__(self, *, limit: int = MAX_IN_FLIGHT):
        if limit < 1:
            raise ValueError(f"at least one checkpoint must be allowed in flight, got {limit}")
        self.limit = limit
        self._free = [HostSlot() for _ in range(limit)]  # empty until first used
        self._queue: deque[WriteJob] = deque()
        self._cond = threading.Condition()
        self._failure: tuple[int, BaseException] | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self.limit - len(self._free)

    # -- the training thread -------------------------------------------------

    def check(self) -> None:
        """Raise the failure of a background write, if there was one."""
        with self._cond:
            self._raise_failure()

    def acquire(self) -> HostSlot:
        """A free host slot, waiting for one if `limit` checkpoints are in flight."""
        with self._cond:
            while not self._free and self._failure is None:
                self._cond.wait()
            self._raise_failure()
            return self._free.pop()

    def release(self, slot: HostSlot) -> None:
        """Give back a slot that was acquired but never submitted."""
        with self._cond:
            self._free.append(slot)
            self._cond.notify_all()

    def submit(self, job: WriteJob) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError("the checkpoint writer is closed")
            self._queue.append(job)
            if self._thread is None:
                # A daemon: if the process is going down anyway, an unfinished
                # write must not keep it alive (its staging directory is a
                # leftover that the next start removes).
                self._thread = threading.Thread(
                    target=self._run, name="tuneyard-checkpoint-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self, *, raise_failure: bool = True) -> None:
        """Wait until every submitted job has finished (or been discarded after a
        failure); then raise the failure if asked."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        if raise_failure:
            self.check()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            number, exc = self._failure
            raise TrainingError(
                f"checkpoint {number} could not be saved: {describe(exc)}"
            ) from exc

    # -- the writer thread ---------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                failed_before = self._failure is not None
            try:
                if failed_before:
                    job.discard()
                else:
                    try:
                        job.run()
                    except BaseException as exc:
                        log.exception("checkpoint %s could not be saved", job.number)
                        with self._cond:
                            self._failure = (job.number, exc)
                        job.discard()
            except BaseException:  # a failing clean-up must not kill the thread
                log.exception("cleaning up after checkpoint %s failed", job.number)
            finally:
                with self._cond:
                    self._free.append(job.slot)
                    self._cond.notify_all()
