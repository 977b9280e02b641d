"""A job's training on a Ray cluster: `python -m tuneyard.worker.ray_train JOB WORKER`.

With `TUNEYARD_RAY_ADDRESS` set, the worker spawns this module instead of
`tuneyard.worker.child`, and supervises it the same way (heartbeat, cancel,
timeout, delete, requeue after a crash). This process is the Ray driver: it
starts one Ray Train run (`TorchTrainer`, `num_workers` data-parallel workers,
gloo on CPU, NCCL when the cluster has GPUs) whose every worker calls the same
`training.run_job` as the local child. Ray Train initialises torch.distributed
and sets RANK/WORLD_SIZE/LOCAL_RANK, which the HF Trainer picks up (DDP).

- Rank 0 reports progress, losses and checkpoints through `DbEvents`: it
  publishes to the store (which every node must see: S3, or a shared path)
  and records the job's final status, exactly as the local child does.
- The other ranks train, and report nothing; whether to stop (cancel, pause,
  early stop, timeout) is decided by rank 0 and broadcast each step, so every
  rank leaves the loop at the same step and none waits forever in a collective.
- Stopping: the worker ends this process (SIGTERM, then SIGKILL); the Train
  controller actor is owned by this driver, so Ray ends the controller and the
  training workers with it.
- A Ray worker killed mid-training fails the run (Ray Train retries are off,
  `max_failures=0`): nothing recorded a status, so this process exits with
  EXIT_CRASHED and the worker's attempts path requeues the job, which resumes
  from its last published checkpoint with contiguous numbering.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

EXIT_RECORDED = 3  # as tuneyard.worker.loop: the job's status is recorded
EXIT_CRASHED = 75  # no status recorded: the worker requeues (attempts permitting)

# What a Ray worker needs from this process's environment (a Ray worker process
# starts from the raylet's environment, not the driver's).
FORWARDED = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
             "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
             "AWS_CONFIG_FILE")


def runtime_env(settings) -> dict:
    """The environment of the Ray tasks and actors tuneyard starts."""
    env = {key: os.environ[key] for key in FORWARDED if key in os.environ}
    env.update({key: value for key, value in os.environ.items()
                if key.startswith("TUNEYARD_") and key != "TUNEYARD_RAY_ADDRESS"})
    env.update(TUNEYARD_HOME=str(settings.home),
               TUNEYARD_DATABASE_URL=settings.resolved_database_url,
               TUNEYARD_STORAGE_URL=settings.resolved_storage_url,
               TOKENIZERS_PARALLELISM="false")
    return {"env_vars": env}


def connect(settings) -> None:
    """Join the cluster as a driver (logs of its workers come here)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=settings.ray_address, runtime_env=runtime_env(settings),
                 log_to_driver=True, configure_logging=False)


def cluster_has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) >= 1


class RankEvents:
    """TrainingEvents of one rank: rank 0's go to the database (DbEvents);
    the stop/pause decision is rank 0's, broadcast so all ranks agree."""

    def __init__(self, inner, *, rank: int, timeout_seconds: int, started_at: float | None):
        self.inner, self.rank = inner, rank
        self.timeout_seconds, self.started_at = timeout_seconds, started_at
        self._pause = False

    def progress(self, percent: int) -> None:
        if self.inner is not None:
            self.inner.progress(percent)

    def loss(self, step: int, value: float) -> None:
        if self.inner is not None:
            self.inner.loss(step, value)

    def metrics(self, step: int, values: dict) -> None:
        if self.inner is not None:
            self.inner.metrics(step, values)

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        if self.inner is not None:  # rank 0 publishes; the other ranks' copies are dropped
            self.inner.checkpoint(number, path, manifest)

    def should_stop(self) -> bool:
        """Called once per step on every rank (the publisher's on_step_end)."""
        import time

        import torch
        import torch.distributed as dist

        from tuneyard import policy

        stop = pause = timed_out = False
        if self.inner is not None:
            stop = self.inner.should_stop()
            pause = bool(self.inner.should_pause())
            # The other ranks follow rank 0's clock: each rank reading its own
            # could stop one a step before the others.
            timed_out = policy.timed_out(timeout_seconds=self.timeout_seconds,
                                         started_at=self.started_at, now=time.time())
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flags = torch.tensor([int(stop), int(pause), int(timed_out)], dtype=torch.int64)
            if dist.get_backend() == "nccl":
                flags = flags.cuda()
            dist.broadcast(flags, src=0)
            stop, pause, timed_out = (bool(v) for v in flags.tolist())
        self._pause = pause
        return stop or (timed_out and self.inner is None)

    def should_pause(self) -> bool:
        return self._pause


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: prepare the data and model, then `run_job`."""
    import ray.train

    from tuneyard import logs, policy
    from tuneyard.checkpoints import CheckpointError
    from tuneyard.checkpoints.reader import download_checkpoint
    from tuneyard.config import get_settings
    from tuneyard.db import make_engine
    from tuneyard.models.resolve import ModelUnavailable
    from tuneyard.services.events import emit
    from tuneyard.status import JobStatus
    from tuneyard.storage import open_store
    from tuneyard.tables import Checkpoint, TrainingJob, now
    from tuneyard.training import JobSpec, TrainingError, run_job
    from tuneyard.training.params import parse_parameters
    from tuneyard.worker.child import (
        DbEvents,
        JobFailure,
        prepare_examples,
        record,
        resolve_base,
    )

    job_id = config["job_id"]
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    logs.configure()
    logs.set_process_ids(job_id=job_id)
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    store = open_store(settings.resolved_storage_url)
    workdir = settings.home / "work" / f"{job_id}.ray{rank}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        with Session(engine) as session:
            job = session.get(TrainingJob, job_id)
            if job is None or job.worker_id != config["worker_id"]:
                return
            train, test, labels, multi = prepare_examples(session=session, store=store,
                                                          job=job, workdir=workdir)
            model_path, base_path = resolve_base(settings=settings, session=session,
                                                 store=store, job=job, workdir=workdir)
            latest = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id)
                                    .order_by(Checkpoint.number.desc()).limit(1))
        next_number = latest.number + 1 if latest else 1
        if next_number != config["next_number"]:
            raise JobFailure("checkpoints changed while the Ray run started")
        resume_from = (download_checkpoint(store=store, prefix=latest.storage_prefix,
                                           target=workdir / "resume") if latest else None)
        params = parse_parameters(job.hyper_parameters)
        spec = JobSpec(job_id=job.id, task_type=job.task_type, base_model=job.base_model,
                       model_path=model_path, train_examples=train, eval_examples=test,
                       hyper_parameters=job.hyper_parameters, labels=labels, multi_label=multi,
                       base_model_path=base_path, started_at=job.started_at,
                       eval_loss_in_loop=False,
                       technique=job.training_technique or "SFT", reward=job.reward,
                       functions_home=str(settings.home))
        inner = (DbEvents(engine=engine, store=store, job=job, workdir=workdir,
                          parent_pid=os.getppid()) if rank == 0 else None)
        events = RankEvents(inner, rank=rank, timeout_seconds=params.timeout_seconds,
                            started_at=job.started_at)
        if rank == 0:
            emit(engine, job.id, "started",
                 f"training started on Ray with {world} workers on {len(train)} examples "
                 f"({len(test)} held out for testing)"
                 + (f", resuming from checkpoint {latest.number} at step {latest.step}"
                    if latest else ""),
                 data={"train_examples": len(train), "test_examples": len(test),
                       "num_workers": world,
                       "resumed_from": latest.number if latest else None,
                       "resumed_step": latest.step if latest else None})
        summary = run_job(spec, workdir=workdir / "run", events=events,
                          resume_from=resume_from, next_number=next_number)
        if rank != 0:
            return
        with Session(engine) as session:
            early = bool(getattr(session.get(TrainingJob, job_id), "early_stopped", False))
        if summary["stop_reason"] == "timeout":
            record(engine, job_id, status=policy.TIMED_OUT, finished_at=now(),
                   error=policy.timeout_reason(params.timeout_seconds))
        elif summary["stop_reason"] == "paused":
            record(engine, job_id, status=JobStatus.PAUSED, pause_requested=False)
        elif summary["stopped"] and not early:
            record(engine, job_id, status=JobStatus.CANCELLED, finished_at=now())
        else:
            record(engine, job_id, status=JobStatus.SUCCESS, progress=100, finished_at=now())
    except (JobFailure, TrainingError, ModelUnavailable, CheckpointError) as exc:
        # Recorded, then raised: Ray Train ends the other ranks' run.
        record(engine, job_id, status=JobStatus.FAILED, error=str(exc), finished_at=now())
        raise
    except MemoryError:
        record(engine, job_id, status=JobStatus.FAILED, finished_at=now(),
               error="out of memory: try a smaller batch size or max_seq_length, or LoRA")
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        engine.dispose()


def run(job_id: str, worker_id: str, settings) -> int:
    """Start the Ray Train run of `job_id` and wait for it; the exit code for the worker."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from tuneyard.db import make_engine
    from tuneyard.status import JobStatus
    from tuneyard.storage import open_store
    from tuneyard.tables import Checkpoint, TrainingJob
    from tuneyard.training.params import parse_parameters
    from tuneyard.worker.child import _remove_unrecorded

    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            job = session.get(TrainingJob, job_id)
            if job is None or job.worker_id != worker_id:
                return EXIT_RECORDED
            latest = session.scalar(select(Checkpoint.number).where(
                Checkpoint.job_id == job_id).order_by(Checkpoint.number.desc()).limit(1))
            next_number = (latest or 0) + 1
            # Files of a number never recorded: a publish cut short by a crash.
            _remove_unrecorded(open_store(settings.resolved_storage_url), job, next_number)
            num_workers = parse_parameters(job.hyper_parameters).num_workers
            attempt = job.attempts
        connect(settings)
        gpu = cluster_has_gpus()
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"job_id": job_id, "worker_id": worker_id,
                               "next_number": next_number},
            torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=gpu,
                                         resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name=f"tuneyard-{job_id}-{attempt}",
                                 storage_path=str(settings.home / "ray"),
                                 failure_config=FailureConfig(max_failures=0)),
        )
        try:
            trainer.fit()
        except Exception:  # noqa: BLE001 - settled below from the job's row
            traceback.print_exc()
        with Session(engine) as session:
            job = session.get(TrainingJob, job_id)
            if job is None or job.status != JobStatus.RUNNING or job.worker_id != worker_id:
                return EXIT_RECORDED
        # Running, nothing recorded: a Ray worker died (killed, OOM, node lost).
        print(f"job {job_id}: the Ray Train run ended without a status", file=sys.stderr)
        return EXIT_CRASHED
    finally:
        engine.dispose()


def main(job_id: str, worker_id: str) -> int:
    from tuneyard import logs
    from tuneyard.config import get_settings
    from tuneyard.worker.child import _die_with_parent

    _die_with_parent()
    logs.configure()
    logs.set_process_ids(job_id=job_id)
    # SIGTERM from the worker (cancel, timeout, delete): exit at once; Ray ends
    # the run's controller and workers with this driver.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(EXIT_CRASHED))
    return run(job_id, worker_id, get_settings())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
