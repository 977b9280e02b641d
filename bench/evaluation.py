"""P8: evaluation latency, from a checkpoint being published to its test results.

tuneyard: the job's real evaluation process, started as the worker starts it
(`Worker._spawn_evaluation`: forked from the forkserver that preloaded torch,
transformers and peft) on a home with a SQLite database and a local store,
for a Running text-generation job with a test dataset. Once it has evaluated
the baseline (so it is the warm, per-job process it is beside training),
checkpoints are published one at a time with the worker's own code
(`publish_checkpoint` + `DbEvents.checkpoint`: files into the store, archive,
DB row); the clock runs from the row's commit until the row says
`test_status=done` (polled every 10 ms).

baseline: the same evaluation (`evaluate_checkpoint`, same checkpoint files,
test set and parameters, one torch thread like the evaluation process on a
small machine) called in this process, libraries already loaded, after a
warm-up. Rounds alternate baseline and tuneyard; ratio: median over rounds.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.common import Result, load_average, median, scratch_dir
from bench.fixtures import build_lm, examples, lm_shape, running_job

TEST_EXAMPLES = 8
GENERATE = 4  # examples whose generations are scored (32 new tokens at most each)


def _write_dataset(session, store, job, records: list[dict], role: str):
    import hashlib
    import json

    from tuneyard.ids import new_id
    from tuneyard.tables import Dataset

    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    key = f"projects/{job.project_id}/datasets/{role}.jsonl"
    store.put(key, data)
    row = Dataset(id=new_id("ds"), project_id=job.project_id, name=role,
                  filename=f"{role}.jsonl", is_uploaded=True, storage_key=key,
                  file_format="jsonl", shape="prompt_completion", num_records=len(records),
                  sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                  upload_by=job.created_by)
    session.add(row)
    return row.id


def setup(home: Path, model_dir: Path, quick: bool):
    """(settings, engine, job, test records, params) of a Running job ready to evaluate."""
    from sqlalchemy.orm import Session

    from tuneyard.config import Settings
    from tuneyard.storage import open_store
    from tuneyard.tables import TrainingJob
    from tuneyard.training.params import resolve_parameters

    (home / "models.yaml").write_text(
        "models:\n  - name: bench-lm\n    type: completion\n"
        f"    source: {model_dir}\n")
    params = resolve_parameters({"max_seq_length": 64, "per_device_eval_batch_size": 8,
                                 "eval_generate_samples": GENERATE})
    engine, job = running_job(home, params)
    settings = Settings(home=home)
    store = open_store(settings.resolved_storage_url)
    test = examples(4 if quick else TEST_EXAMPLES, seed=1)
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(TrainingJob, job.id)
        row.train_dataset_id = _write_dataset(session, store, row, examples(16), "train")
        row.test_dataset_id = _write_dataset(session, store, row, test, "test")
        row.started_at = int(time.time())
        session.commit()
        job = session.get(TrainingJob, job.id)
    return settings, engine, store, job, test, params


def publish(root: Path, model_dir: Path, number: int) -> Path:
    """A published checkpoint of the model's files (as the training writer leaves it)."""
    from tuneyard.checkpoints.writer import publish_checkpoint

    staging = root / f".staging-{number:06d}"
    shutil.copytree(model_dir, staging)
    return publish_checkpoint(staging_dir=staging, checkpoints_root=root, number=number,
                              step=number, epoch=float(number), base_model="bench-lm",
                              hyper_parameters={}, extra={"task_type": "text-generation",
                                                          "is_lora": False})


def wait_until(predicate, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    import torch
    from sqlalchemy import select, update
    from sqlalchemy.orm import Session

    from tuneyard.checkpoints.reader import read_manifest
    from tuneyard.evaluation import evaluate_checkpoint
    from tuneyard.status import JobStatus, TestStatus
    from tuneyard.tables import Checkpoint, TrainingJob
    from tuneyard.worker.child import DbEvents
    from tuneyard.worker.loop import Worker

    model_dir = build_lm(lm_shape(quick))
    rounds = 1 if quick else 5
    home = scratch_dir("eval")
    proc = None
    try:
        settings, engine, store, job, test, params = setup(home, model_dir, quick)
        events = DbEvents(engine=engine, store=store, job=job, workdir=home / "job",
                          parent_pid=os.getppid())
        worker = Worker(settings, name="bench")
        started = time.perf_counter()
        proc = worker._spawn_evaluation(job.id)

        def baseline_done():
            with Session(engine) as session:
                return session.get(TrainingJob, job.id).baseline_test_results is not None

        wait_until(baseline_done, 600, "the evaluation process's baseline")
        first_ready = time.perf_counter() - started

        def evaluate_here(directory: Path) -> float:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as the evaluation process on a small machine
            try:
                began = time.perf_counter()
                evaluate_checkpoint(
                    model_dir=str(directory), task_type="text-generation", examples=test,
                    home=settings.home, generate_samples=params["eval_generate_samples"],
                    max_seq_length=params["max_seq_length"],
                    batch_size=params["per_device_eval_batch_size"])
                return time.perf_counter() - began
            finally:
                torch.set_num_threads(threads)

        root = home / "checkpoints"
        warm = publish(root, model_dir, 1000)
        evaluate_here(warm)  # warm-up: first use of the generation code paths here
        base_runs, ty_runs = [], []
        for number in range(1, rounds + 1):
            path = publish(root, model_dir, number)
            base_runs.append(evaluate_here(path))
            events.checkpoint(number, path, read_manifest(path))
            published = time.perf_counter()

            def done(n=number):
                with Session(engine) as session:
                    status = session.scalar(select(Checkpoint.test_status).where(
                        Checkpoint.job_id == job.id, Checkpoint.number == n))
                if status == TestStatus.FAILED:
                    raise RuntimeError(f"the evaluation of checkpoint {n} failed")
                return status == TestStatus.DONE

            wait_until(done, 600, f"checkpoint {number}'s test results")
            ty_runs.append(time.perf_counter() - published)
        with Session(engine) as session:
            session.execute(update(TrainingJob).where(TrainingJob.id == job.id)
                            .values(status=JobStatus.SUCCESS))
            session.commit()
        wait_until(lambda: proc.poll() is not None, 60, "the evaluation process to exit", 0.1)
        engine.dispose()
    finally:
        if proc is not None and proc.poll() is None:
            from tuneyard.processes import stop_group

            stop_group(proc, grace=1.0)
        shutil.rmtree(home, ignore_errors=True)
    pairs = [t / b for t, b in zip(ty_runs, base_runs, strict=True)]
    ty_s, base_s = median(ty_runs), median(base_runs)
    result = Result(
        id="P8", measure="evaluation latency, checkpoint published → test results (s)",
        unit="s", tuneyard=ty_s, baseline=base_s, ratio=median(pairs), goal_op="<=",
        goal=1.5, baseline_name="the same evaluate_checkpoint in-process, libraries loaded",
        details={"rounds": rounds, "test_examples": len(test), "generated": GENERATE,
                 "tuneyard_s": ty_runs, "baseline_s": base_runs, "paired_ratios": pairs,
                 "process_start_to_baseline_done_s": first_ready,
                 "load_average": load_average()},
    )
    result.limits = (
        f"{ty_s:.2f}s from the DB row to the results against {base_s:.2f}s for the "
        "evaluation alone. Beyond it, the evaluation process polls the database for "
        "pending checkpoints (every 0.1s), links the checkpoint's files out of the store, "
        "writes the per-example rows and details to the store and commits, then applies "
        "retention; model loading is on both sides."
    )
    return [result]
