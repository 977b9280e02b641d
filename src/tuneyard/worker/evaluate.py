"""Evaluating one checkpoint (or the base model) in its own process:
`python -m tuneyard.worker.evaluate JOB TARGET` where TARGET is a checkpoint
number or `baseline`.

Runs beside training, never inside its loop. Results go to the store (the
per-example JSONL and the details), then to the DB row; a failure is recorded
on the checkpoint and never touches the job's status.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.config import get_settings
from tuneyard.db import make_engine
from tuneyard.services.jobs import job_prefix
from tuneyard.services.retention import after_evaluation
from tuneyard.storage import open_store
from tuneyard.tables import Checkpoint, TrainingJob, now
from tuneyard.worker.child import download_prefix, prepare_examples, resolve_base

log = logging.getLogger("tuneyard.evaluate")


def _put_json_lines(store, key: str, rows: list[dict], work: Path) -> None:
    path = work / "rows.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    store.put_file(key, path)


def evaluate_target(job_id: str, target: str) -> int:
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    store = open_store(settings.resolved_storage_url)
    baseline = target == "baseline"
    number = None if baseline else int(target)
    work = Path(tempfile.mkdtemp(prefix=f"eval-{job_id}-", dir=settings.ensure_home()))
    try:
        with Session(engine) as session:
            job = session.get(TrainingJob, job_id)
            if job is None:
                return 0
            row = None
            if not baseline:
                row = session.scalar(select(Checkpoint).where(
                    Checkpoint.job_id == job_id, Checkpoint.number == number))
                if row is None or row.pruned:
                    return 0
                row.test_status = "running"
                session.commit()
            try:
                _, test, labels, multi = prepare_examples(session=session, store=store,
                                                          job=job, workdir=work)
                if baseline:
                    model_dir, base_path = resolve_base(settings=settings, session=session,
                                                        store=store, job=job, workdir=work)
                else:
                    model_dir = str(download_prefix(store, row.storage_prefix, work / "model",
                                                    skip_state=True))
                    _, base_path = resolve_base(settings=settings, session=session,
                                                store=store, job=job, workdir=work)
                from tuneyard.evaluation import evaluate_checkpoint

                params = job.hyper_parameters
                result = evaluate_checkpoint(
                    model_dir=model_dir, task_type=job.task_type, examples=test, labels=labels,
                    multi_label=multi, test_functions=job.test_functions or (),
                    home=settings.home,
                    generate_samples=int(params.get("eval_generate_samples", 32)),
                    max_seq_length=int(params.get("max_seq_length", 512)),
                    batch_size=int(params.get("per_device_eval_batch_size", 8)),
                    base_model_path=base_path,
                )
                name = "baseline" if baseline else f"{number:06d}"
                results_key = f"{job_prefix(job)}results/{name}.jsonl"
                details_key = f"{job_prefix(job)}results/{name}.details.json"
                _put_json_lines(store, results_key, result.rows, work)
                store.put(details_key, json.dumps(result.details, indent=2).encode())
                document = {"general_test_result_key": results_key, "details_key": details_key,
                            "aggregated_test_result": result.aggregated}
                if baseline:
                    job.baseline_test_results = {**document, "status": "done"}
                else:
                    row.test_results, row.test_status, row.test_error = document, "done", None
                    row.updated_at = max(now(), row.created_at)
            except Exception as exc:  # noqa: BLE001 - recorded on the checkpoint
                traceback.print_exc()
                session.rollback()
                message = f"{type(exc).__name__}: {exc}"
                if baseline:
                    job.baseline_test_results = {"status": "failed", "error": message}
                else:
                    row.test_status, row.test_error, row.updated_at = "failed", message, now()
                session.commit()
                after_evaluation(session=session, store=store, job_id=job_id)
                return 0
            session.commit()
            after_evaluation(session=session, store=store, job_id=job_id)
            log.info("evaluated %s of %s: %s", target, job_id, result.aggregated)
            return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(evaluate_target(sys.argv[1], sys.argv[2]))
