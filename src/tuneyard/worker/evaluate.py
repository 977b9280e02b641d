"""A job's evaluation process: `python -m tuneyard.worker.evaluate JOB`.

One process per job, started by the worker beside the training child. It
evaluates the base model first (the baseline), then every checkpoint in
number order as it is published, and exits once training has ended and
nothing is left to evaluate. Torch, the test set and the base model's path
are loaded once for all targets, not once per checkpoint.

Results go to the store (the per-example JSONL and the details), then to the
DB row; a failure is recorded on that checkpoint (or the baseline) and never
touches the job's status. See docs/architecture.md for the state machine.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard import metrics, policy
from tuneyard.checkpoints.reader import download_checkpoint
from tuneyard.config import get_settings
from tuneyard.db import make_engine
from tuneyard.services.events import add_event
from tuneyard.services.retention import after_evaluation
from tuneyard.status import JobStatus, TestStatus
from tuneyard.storage import ArtifactStore, keys, open_store
from tuneyard.tables import Checkpoint, TrainingJob, now
from tuneyard.training.params import parse_parameters
from tuneyard.worker.child import prepare_examples, resolve_base

log = logging.getLogger("tuneyard.evaluate")
BASELINE = "baseline"
POLL_SECONDS = 0.1  # how often an idle evaluator looks for a new checkpoint (a cheap query)


@dataclass
class TestSet:
    """What every target of one job is evaluated on, prepared once."""

    examples: list[dict]
    labels: list[str] | None
    multi_label: bool
    base_model_dir: str
    """The base model itself: the baseline's weights."""
    base_path: str | None
    """The base model a fine-tuned (continued) job's LoRA adapters sit on, if any."""


def _put_json_lines(store: ArtifactStore, key: str, rows: list[dict], work: Path) -> None:
    path = work / "rows.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    store.put_file(key, path)


def failure_message(exc: BaseException) -> str:
    """What the user reads on a failed evaluation: the cause, and a remedy where known."""
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return ("evaluation ran out of memory: lower the evaluation batch size "
                "(per_device_eval_batch_size) or max_seq_length")
    return f"{type(exc).__name__}: {exc}"


def next_target(session: Session, job: TrainingJob) -> str | None:
    """The baseline first, then the lowest-numbered pending checkpoint."""
    if job.baseline_test_results is None:
        return BASELINE
    number = session.scalar(
        select(Checkpoint.number).where(Checkpoint.job_id == job.id,
                                        Checkpoint.test_status == TestStatus.PENDING,
                                        Checkpoint.pruned.is_(False))
        .order_by(Checkpoint.number).limit(1))
    return None if number is None else str(number)


def _prepare(*, settings, session: Session, store: ArtifactStore, job: TrainingJob,
             work: Path) -> TestSet:
    _, test, labels, multi = prepare_examples(session=session, store=store, job=job,
                                              workdir=work)
    model_dir, base_path = resolve_base(settings=settings, session=session, store=store,
                                        job=job, workdir=work)
    return TestSet(examples=test, labels=labels, multi_label=multi,
                   base_model_dir=model_dir, base_path=base_path)


def evaluate_target(*, settings, session: Session, store: ArtifactStore, job: TrainingJob,
                    target: str, test_set: TestSet, work: Path) -> None:
    """Evaluate one target and record its results (or its failure)."""
    baseline = target == BASELINE
    job_id = job.id  # usable after a commit even if the row was deleted meanwhile
    row = None
    if not baseline:
        row = session.scalar(select(Checkpoint).where(
            Checkpoint.job_id == job.id, Checkpoint.number == int(target)))
        if row is None or row.pruned:
            return
        row.test_status = TestStatus.RUNNING
        session.commit()
    model_dir = work / "model"
    try:
        if baseline:
            model = test_set.base_model_dir
        else:
            model = str(download_checkpoint(store=store, prefix=row.storage_prefix,
                                            target=model_dir, model_only=True))
        from tuneyard.evaluation import evaluate_checkpoint

        params = parse_parameters(job.hyper_parameters)
        result = evaluate_checkpoint(
            model_dir=model, task_type=job.task_type, examples=test_set.examples,
            labels=test_set.labels, multi_label=test_set.multi_label,
            test_functions=job.test_functions or (), home=settings.home,
            generate_samples=params.eval_generate_samples,
            max_seq_length=params.max_seq_length,
            batch_size=params.per_device_eval_batch_size,
            base_model_path=test_set.base_path,
            technique=job.training_technique or "SFT", reward=job.reward,
        )
        number = None if baseline else int(target)
        results_key = keys.results_key(job, number=number)
        details_key = keys.details_key(job, number=number)
        if not _job_exists(session, job_id):
            return  # deleted while we evaluated: its files are gone, add none
        _put_json_lines(store, results_key, result.rows, work)
        store.put(details_key, json.dumps(result.details, indent=2).encode())
        if not _job_exists(session, job_id):
            # Deleted while we wrote: the deletion may have listed the job's
            # files before ours landed, so remove them ourselves.
            store.delete(results_key)
            store.delete(details_key)
            return
        document = {"general_test_result_key": results_key, "details_key": details_key,
                    "aggregated_test_result": result.aggregated}
        if baseline:
            job.baseline_test_results = {**document, "status": TestStatus.DONE}
        else:
            row.test_results, row.test_status, row.test_error = document, TestStatus.DONE, None
            # The training loop no longer computes the eval loss (JobSpec.eval_loss_in_loop):
            # the test loss of the published checkpoint is it, shown once it lands.
            if row.eval_loss is None:
                row.eval_loss = policy.metric_number(result.aggregated.get("loss"))
            row.updated_at = max(now(), row.created_at)
        log.info("evaluated %s of %s: %s", target, job.id, result.aggregated)
        add_event(session, job_id, "evaluated",
                  f"{'base model' if baseline else f'checkpoint {target}'} evaluated: "
                  + ", ".join(f"{k}={v}" for k, v in list(result.aggregated.items())[:8]),
                  data={"checkpoint": number, "metrics": dict(result.aggregated)})
    except Exception as exc:  # noqa: BLE001 - recorded on the checkpoint
        traceback.print_exc()
        session.rollback()
        record_failure(session=session, job=job, row=row, message=failure_message(exc))
        add_event(session, job_id, "evaluated", f"evaluation of "
                  f"{'the base model' if baseline else f'checkpoint {target}'} failed: "
                  f"{failure_message(exc)}", level="warn",
                  data={"checkpoint": None if baseline else int(target)})
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    session.commit()
    after_evaluation(session=session, store=store, job_id=job.id)


def _job_exists(session: Session, job_id: str) -> bool:
    """Whether the job's row is still there, read in a new transaction: a SQLite
    reader keeps seeing the snapshot its transaction started with."""
    session.commit()
    return session.scalar(select(TrainingJob.id).where(TrainingJob.id == job_id)) is not None


def record_failure(*, session: Session, job: TrainingJob, row: Checkpoint | None,
                   message: str) -> None:
    if row is None:
        job.baseline_test_results = {"status": TestStatus.FAILED, "error": message}
    else:
        row.test_status, row.test_error, row.updated_at = TestStatus.FAILED, message, now()


def _prepare_or_fail_all(*, settings, session, store, job, work) -> TestSet | None:
    """The test set, or None after recording why every target failed."""
    try:
        return _prepare(settings=settings, session=session, store=store, job=job, work=work)
    except Exception as exc:  # noqa: BLE001 - every target fails the same way
        traceback.print_exc()
        session.rollback()
        message = failure_message(exc)
        if job.baseline_test_results is None:
            record_failure(session=session, job=job, row=None, message=message)
        for row in session.scalars(select(Checkpoint).where(
                Checkpoint.job_id == job.id, Checkpoint.test_status == TestStatus.PENDING)):
            record_failure(session=session, job=job, row=row, message=message)
        session.commit()
        return None


def evaluate_job(job_id: str) -> int:
    """Evaluate the job's targets in order until training has ended and none is left."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    store = open_store(settings.resolved_storage_url)
    work = Path(tempfile.mkdtemp(prefix=f"eval-{job_id}-", dir=settings.ensure_home()))
    test_set: TestSet | None = None
    try:
        while True:
            with Session(engine) as session:
                job = session.get(TrainingJob, job_id)
                if job is None:
                    return 0
                # The status is read before looking for work: a checkpoint's row
                # is inserted before training records its final status, so an
                # ended job with nothing pending has nothing more coming.
                training_over = job.status != JobStatus.RUNNING
                target = next_target(session, job)
                if target is None:
                    if training_over:
                        return 0
                    session.rollback()
                    time.sleep(POLL_SECONDS)
                    continue
                if test_set is None:
                    test_set = _prepare_or_fail_all(settings=settings, session=session,
                                                    store=store, job=job, work=work)
                    if test_set is None:
                        after_evaluation(session=session, store=store, job_id=job_id)
                        if training_over:
                            return 0
                        continue
                started = time.monotonic()
                evaluate_target(settings=settings, session=session, store=store, job=job,
                                target=target, test_set=test_set, work=work)
                metrics.observe_evaluation(time.monotonic() - started,
                                           target="baseline" if target == BASELINE
                                           else "checkpoint")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        engine.dispose()


if __name__ == "__main__":
    from tuneyard import logs

    logs.configure()
    logs.set_process_ids(job_id=sys.argv[1])  # this process works on one job
    sys.exit(evaluate_job(sys.argv[1]))
