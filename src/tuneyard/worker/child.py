"""What runs inside a job's child process: `python -m tuneyard.worker.child JOB WORKER`.

Prepares the data (split, downsample, rebalance), resolves the base model (or
downloads the checkpoint it continues from), resumes from the job's latest
checkpoint if a previous attempt died, trains, and publishes every checkpoint:
files to the store (manifest last), then the archive, then the DB row.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneyard import logs, metrics, policy
from tuneyard.catalog import load_catalog
from tuneyard.checkpoints import CheckpointError
from tuneyard.checkpoints.reader import download_checkpoint
from tuneyard.checkpoints.writer import store_model_archive, upload_checkpoint
from tuneyard.config import Settings, get_settings
from tuneyard.data import DEFAULT_TEST_SPLIT, choose_examples, load_examples, to_task_examples
from tuneyard.db import make_engine
from tuneyard.services.events import add_event, emit, status_message
from tuneyard.status import JobStatus
from tuneyard.storage import ArtifactStore, keys, open_store
from tuneyard.tables import Checkpoint, Dataset, TrainingJob, now
from tuneyard.training.params import parse_parameters
from tuneyard.worker.loop import EXIT_RECORDED

log = logging.getLogger("tuneyard.child")
MAX_LOSS_POINTS = 1000


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the worker dies, so an orphan never trains on
    while another worker resumes the same job."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class DbEvents:
    """TrainingEvents that land in the database and the artifact store."""

    def __init__(self, *, engine, store: ArtifactStore, job: TrainingJob, workdir: Path,
                 parent_pid: int):
        self.engine, self.store, self.job, self.workdir = engine, store, job, workdir
        self.parent_pid = parent_pid
        self._progress = job.progress or 0
        self._last_poll = 0.0
        self._stop = False
        self._pause = False
        self._last_step: int | None = None  # for the steps counter (metrics)

    def progress(self, percent: int) -> None:
        percent = max(self._progress, min(100, int(percent)))
        if percent == self._progress:
            return
        self._progress = percent
        with Session(self.engine) as session:
            session.execute(update(TrainingJob).where(TrainingJob.id == self.job.id)
                            .values(progress=percent, updated_at=now()))
            session.commit()

    def loss(self, step: int, value: float) -> None:
        if self._last_step is not None and step > self._last_step:
            metrics.count_training_steps(step - self._last_step)
        self._last_step = step  # the first report is a baseline: a resumed job starts late
        with Session(self.engine) as session:
            job = session.get(TrainingJob, self.job.id)
            if job is None:
                return
            points = list(job.training_loss or [])
            points.append({"timestamp": time.time(), "loss": float(value), "step": int(step)})
            if len(points) > MAX_LOSS_POINTS:
                # Halve the resolution of the older half: long jobs keep their shape
                # in bounded space, and recent points stay exact.
                half = len(points) // 2
                points = points[:half:2] + points[half:]
            job.training_loss = points
            # The metrics event at each logging step (`logging_steps`).
            add_event(session, self.job.id, "metrics",
                      f"step {int(step)}: training loss={float(value):.4f}",
                      data={"step": int(step), "train_loss": float(value)})
            session.commit()

    def metrics(self, step: int, values: dict) -> None:
        """The trainer's other numbers at a logging step (DPO reward accuracy and
        margins, GRPO mean reward), kept like the loss points."""
        with Session(self.engine) as session:
            job = session.get(TrainingJob, self.job.id)
            if job is None:
                return
            points = list(job.training_metrics or [])
            points.append({"step": int(step), "timestamp": time.time(), **values})
            if len(points) > MAX_LOSS_POINTS:
                half = len(points) // 2
                points = points[:half:2] + points[half:]
            job.training_metrics = points
            session.commit()

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        started = time.monotonic()
        prefix = keys.checkpoint_prefix(self.job, number=number)
        size = dir_size(path)
        root = getattr(self.store, "root", None)  # a local store's directory
        # The store copy (none when hard-linked) plus the download archive.
        check_disk(Path(root) if root else self.workdir, needed=2 * size,
                   what=f"checkpoint {number}")
        # Files linked (or copied) in with the manifest's digests, then the archive
        # streamed straight into the store: the bytes are hashed once, when published.
        upload_checkpoint(store=self.store, directory=path, prefix=prefix)
        archive_key = keys.archive_key(self.job, number=number)
        stored = store_model_archive(store=self.store, directory=path, key=archive_key)
        size, sha256 = stored.size, stored.sha256
        with Session(self.engine) as session:
            session.add(Checkpoint(
                job_id=self.job.id, number=number, step=int(manifest.get("step", 0)),
                epoch=float(manifest.get("epoch", 0.0)), storage_prefix=prefix,
                archive_key=archive_key, archive_sha256=sha256, archive_size=size,
                eval_loss=manifest.get("eval_loss"),
            ))
            add_event(session, self.job.id, "checkpoint",
                      f"checkpoint {number} published at step {manifest.get('step')}",
                      data={"checkpoint": number, "step": int(manifest.get("step", 0)),
                            "epoch": float(manifest.get("epoch", 0.0)),
                            "eval_loss": manifest.get("eval_loss"),
                            "train_loss": manifest.get("train_loss")})
            session.commit()
        metrics.observe_checkpoint_publish(time.monotonic() - started)
        log.info("checkpoint %s published (step %s)", number, manifest.get("step"))

    def should_stop(self) -> bool:
        if self._stop:
            return True
        if os.getppid() != self.parent_pid:
            self._stop = True  # the worker is gone
            return True
        if time.monotonic() - self._last_poll < 1.0:
            return False
        self._last_poll = time.monotonic()
        with Session(self.engine) as session:
            job = session.get(TrainingJob, self.job.id)
            self._stop = (job is None or job.cancel_requested or job.early_stopped
                          or job.status != JobStatus.RUNNING)
            self._pause = bool(job is not None and job.pause_requested)
        return self._stop

    def should_pause(self) -> bool:
        """Pause asked (read by the latest `should_stop` poll)."""
        return self._pause


def prepare_examples(*, session: Session, store: ArtifactStore, job: TrainingJob,
                     workdir: Path) -> tuple[list[dict], list[dict], list[str] | None, bool]:
    """Train and test records in task form, chosen once (data.choose_examples) by seed.

    The training process and the evaluations both call this: the same job always
    trains and tests on the same records, and the trainer sees every training one.
    """
    params = parse_parameters(job.hyper_parameters)

    def load(dataset_id: str | None, role: str) -> tuple[list[dict], Dataset]:
        dataset = session.get(Dataset, dataset_id) if dataset_id else None
        if dataset is None:
            raise_failure(f"the {role} dataset was deleted before the job ran")
        local = workdir / "data" / f"{role}-{dataset.filename}"
        store.download_to(dataset.storage_key, local)
        records = load_examples(local, filename=dataset.filename)
        return to_task_examples(records, shape=dataset.shape, task_type=job.task_type,
                                technique=job.training_technique or "SFT"), dataset

    train, train_ds = load(job.train_dataset_id, "train")
    test = load(job.test_dataset_id, "test")[0] if job.test_dataset_id else None
    try:
        train, test = choose_examples(
            train, test, test_fraction=(job.split or {}).get("test_fraction", DEFAULT_TEST_SPLIT),
            downsample_percent=params.downsample_size, rebalance_spec=job.rebalance_data,
            seed=params.seed)
    except ValueError as exc:
        raise_failure(str(exc))
    labels = None
    multi = False
    if job.task_type == "classification":
        labels = sorted({label for ex in train + test for label in ex["labels"]})
        multi = bool(train_ds.multi_label)
    return train, test, labels, multi


class JobFailure(Exception):
    """A reason to fail the job that the user can act on."""


def dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def check_disk(path: Path, *, needed: int, what: str) -> None:
    """Fail with a clear reason rather than write a partial file on a full disk."""
    free = shutil.disk_usage(path).free
    if free < needed:
        raise JobFailure(f"not enough free disk space for {what}: about {needed / 1e9:.2f} GB "
                         f"needed at {path}, {free / 1e9:.2f} GB free")


def raise_failure(message: str) -> None:
    raise JobFailure(message)


def resolve_base(*, settings: Settings, session: Session, store: ArtifactStore,
                 job: TrainingJob, workdir: Path) -> tuple[str, str | None]:
    """(model_path, base_model_path): where the weights to start from are."""
    from tuneyard.models.resolve import resolve_model_path

    catalog = load_catalog(settings.home)
    entry = catalog.get(job.base_model)
    base_source = job.hf_model_link or (entry.source if entry else None)
    if base_source is None:
        raise_failure(f"base model {job.base_model!r} is no longer in the catalog")
    base_path = resolve_model_path(base_source, home=settings.home)
    if job.base_model_option != "fine-tuned":
        return base_path, None
    source = session.scalar(select(Checkpoint).where(
        Checkpoint.job_id == job.source_job_id, Checkpoint.number == job.source_checkpoint))
    if source is None or source.pruned:
        raise_failure(f"checkpoint {job.source_checkpoint} of {job.source_job_id} is gone")
    local = download_checkpoint(store=store, prefix=source.storage_prefix,
                                target=workdir / "source", model_only=True)
    return str(local), base_path


def record(engine, job_id: str, **values) -> None:
    with Session(engine) as session:
        changed = session.execute(update(TrainingJob).where(
            TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
            .values(updated_at=now(), **values)).rowcount
        if changed and "status" in values:
            level, message = status_message(values["status"], values.get("error"))
            add_event(session, job_id, "status", message, level=level,
                      data={"status": str(values["status"])})
        session.commit()


def main(job_id: str, worker_id: str) -> int:
    _die_with_parent()
    parent = os.getppid()
    logs.configure()
    logs.set_process_ids(job_id=job_id)  # this process works on one job
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    store = open_store(settings.resolved_storage_url)
    workdir = settings.home / "work" / job_id
    shutil.rmtree(workdir, ignore_errors=True)  # the store and DB are the truth
    workdir.mkdir(parents=True)
    try:
        from tuneyard.models.resolve import ModelUnavailable
        from tuneyard.training import JobSpec, TrainingError, run_job

        with Session(engine) as session:
            job = session.get(TrainingJob, job_id)
            if job is None or job.worker_id != worker_id:
                return EXIT_RECORDED
            train, test, labels, multi = prepare_examples(session=session, store=store,
                                                          job=job, workdir=workdir)
            model_path, base_path = resolve_base(settings=settings, session=session,
                                                 store=store, job=job, workdir=workdir)
            rows = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job.id)
                                        .order_by(Checkpoint.number)))
        # Resume after a crash: continue from the latest durable checkpoint; any
        # files of a later number were never recorded (crash mid-publish).
        latest = rows[-1] if rows else None
        next_number = latest.number + 1 if latest else 1
        _remove_unrecorded(store, job, next_number)
        resume_from = (download_checkpoint(store=store, prefix=latest.storage_prefix,
                                           target=workdir / "resume")
                       if latest else None)
        # Weights, optimizer state (about twice the weights) and a checkpoint copy.
        check_disk(workdir, needed=4 * dir_size(Path(model_path)), what="training")
        spec = JobSpec(job_id=job.id, task_type=job.task_type, base_model=job.base_model,
                       model_path=model_path, train_examples=train, eval_examples=test,
                       hyper_parameters=job.hyper_parameters, labels=labels, multi_label=multi,
                       base_model_path=base_path, started_at=job.started_at,
                       # The evaluation process computes it from each published checkpoint.
                       eval_loss_in_loop=False,
                       technique=job.training_technique or "SFT", reward=job.reward,
                       functions_home=str(settings.home))
        events = DbEvents(engine=engine, store=store, job=job, workdir=workdir,
                          parent_pid=parent)
        emit(engine, job.id, "started",
             f"training started on {len(train)} examples ({len(test)} held out for testing)"
             + (f", resuming from checkpoint {latest.number} at step {latest.step}"
                if latest else ""),
             data={"train_examples": len(train), "test_examples": len(test),
                   "resumed_from": latest.number if latest else None,
                   "resumed_step": latest.step if latest else None})
        summary = run_job(spec, workdir=workdir / "run", events=events,
                          resume_from=resume_from, next_number=next_number)
        with Session(engine) as session:
            early = bool(getattr(session.get(TrainingJob, job_id), "early_stopped", False))
        if summary["stop_reason"] == "timeout":  # the training loop saw the deadline
            record(engine, job_id, status=policy.TIMED_OUT, finished_at=now(),
                   error=policy.timeout_reason(parse_parameters(job.hyper_parameters)
                                               .timeout_seconds))
        elif summary["stop_reason"] == "paused":
            # Paused after publishing its checkpoint: resume continues from it. The
            # claim stays until resume, so the worker lets evaluations finish as after
            # any recorded end.
            record(engine, job_id, status=JobStatus.PAUSED, pause_requested=False)
        elif summary["stopped"] and not early:
            record(engine, job_id, status=JobStatus.CANCELLED, finished_at=now())
        else:  # finished, or stopped early because the metric stopped improving
            record(engine, job_id, status=JobStatus.SUCCESS, progress=100, finished_at=now())
        return EXIT_RECORDED
    except (JobFailure, TrainingError, ModelUnavailable, CheckpointError) as exc:
        record(engine, job_id, status=JobStatus.FAILED, error=str(exc), finished_at=now())
        return EXIT_RECORDED
    except MemoryError:
        record(engine, job_id, status=JobStatus.FAILED, finished_at=now(),
               error="out of memory: try a smaller batch size or max_seq_length, or LoRA")
        return EXIT_RECORDED
    except Exception as exc:  # noqa: BLE001 - recorded, with the traceback in the log
        traceback.print_exc()
        record(engine, job_id, status=JobStatus.FAILED, finished_at=now(),
               error=f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_RECORDED
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        engine.dispose()


def _remove_unrecorded(store: ArtifactStore, job: TrainingJob, next_number: int) -> None:
    for key in store.list(keys.checkpoints_prefix(job)):
        number = keys.checkpoint_number_of(job, key)
        if number is not None and number >= next_number:
            store.delete(key)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
