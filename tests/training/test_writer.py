"""The background checkpoint writer on its own: order, back-pressure, failures."""

import threading

import pytest

from tuneyard.training import TrainingError
from tuneyard.training.writer import CheckpointWriter


class Job:
    def __init__(self, number, slot, log, *, fail=None, gate=None):
        self.number, self.slot, self.log = number, slot, log
        self.fail, self.gate = fail, gate

    def run(self):
        if self.gate is not None:
            assert self.gate.wait(10)
        self.log.append(("run", self.number))
        if self.fail is not None:
            raise self.fail

    def discard(self):
        self.log.append(("discard", self.number))


def _submit(writer, number, log, **kwargs):
    writer.submit(Job(number, writer.acquire(), log, **kwargs))


def test_jobs_run_in_order_and_close_waits_for_them():
    writer, log = CheckpointWriter(limit=3), []
    gate = threading.Event()
    for number in (1, 2, 3):
        _submit(writer, number, log, gate=gate if number == 1 else None)
    assert writer.in_flight == 3 and log == []
    gate.set()
    writer.close()
    assert log == [("run", 1), ("run", 2), ("run", 3)]
    assert writer.in_flight == 0


def test_a_full_writer_makes_the_loop_wait_for_a_slot():
    writer, log = CheckpointWriter(limit=1), []
    gate = threading.Event()
    _submit(writer, 1, log, gate=gate)
    got = []
    waiter = threading.Thread(target=lambda: got.append(writer.acquire()))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and got == []  # one in flight: the next one waits
    gate.set()
    waiter.join(10)
    assert len(got) == 1 and log == [("run", 1)]
    writer.release(got[0])
    writer.close()


def test_a_failure_discards_later_jobs_and_surfaces_as_a_training_error():
    writer, log = CheckpointWriter(limit=3), []
    gate = threading.Event()
    _submit(writer, 1, log, gate=gate)
    _submit(writer, 2, log, fail=OSError(28, "No space left on device"))
    _submit(writer, 3, log)
    gate.set()
    with pytest.raises(TrainingError, match=r"^checkpoint 2 could not be saved: OSError: "
                                            r"\[Errno 28\] No space left on device$") as info:
        writer.close()
    assert isinstance(info.value.__cause__, OSError)
    # 3 must not publish past the missing 2; 2 cleans up its staging.
    assert log == [("run", 1), ("run", 2), ("discard", 2), ("discard", 3)]
    with pytest.raises(TrainingError, match="checkpoint 2"):
        writer.check()
    with pytest.raises(TrainingError, match="checkpoint 2"):
        writer.acquire()  # the loop never waits on a writer that has failed
    writer.close(raise_failure=False)


def test_limit_must_allow_one():
    with pytest.raises(ValueError):
        CheckpointWriter(limit=0)
