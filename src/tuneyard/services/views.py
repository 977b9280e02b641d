"""Read-side helpers that shape rows for the wire (signed URLs included)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.config import Settings
from tuneyard.schemas import (
    DatasetSummary,
    TestResults,
    TrainingJobCheckpoint,
    TrainingJobDetail,
    TrainingJobSummary,
)
from tuneyard.services.urls import download_url
from tuneyard.tables import Checkpoint, Dataset, Project, TrainingJob
from tuneyard.training.params import wire_parameters


def job_summaries(session: Session, project: Project) -> list[TrainingJobSummary]:
    jobs = session.scalars(
        select(TrainingJob).where(TrainingJob.project_id == project.id)
        .order_by(TrainingJob.id)
    )
    return [TrainingJobSummary.model_validate(j) for j in jobs]


def job_detail(session: Session, job: TrainingJob,
               settings: Settings | None = None) -> TrainingJobDetail:
    def dataset(dataset_id: str | None) -> DatasetSummary | None:
        row = session.get(Dataset, dataset_id) if dataset_id else None
        return DatasetSummary.model_validate(row) if row else None

    source_name = None
    if job.source_job_id:
        source = session.get(TrainingJob, job.source_job_id)
        source_name = source.name if source else job.source_job_id
    return TrainingJobDetail.model_validate({
        **TrainingJobSummary.model_validate(job).model_dump(),
        "description": job.description,
        "train_dataset": dataset(job.train_dataset_id),
        "test_dataset": dataset(job.test_dataset_id),
        "training_loss": job.training_loss or [],
        # The contract allows string|number values only (see wire_parameters).
        "hyper_parameters": wire_parameters(job.hyper_parameters),
        "base_fine_tuned_model": source_name,
        "base_fine_tuned_model_checkpoint": job.source_checkpoint,
        "hf_model_link": job.hf_model_link,
        "test_functions": job.test_functions,
        "split": job.split,
        "error": job.error,
        "best_checkpoint": job.best_checkpoint,
        "baseline_test_results": baseline_view(settings, job) if settings else None,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
        "training_metrics": job.training_metrics,
    })


def test_results_view(settings: Settings, document: dict | None,
                      filename: str, expires_at: int | None = None) -> TestResults | None:
    """Stored results → the contract's `test_results` (a signed URL + string metrics)."""
    if not document or "aggregated_test_result" not in document:
        return None
    key = document.get("general_test_result_key")
    details = document.get("details_key")
    return TestResults(
        general_test_result=download_url(settings, key=key, filename=filename,
                                         expires_at=expires_at) if key else None,
        details_test_result=download_url(
            settings, key=details, filename=filename.replace(".jsonl", ".details.json"),
            expires_at=expires_at,
        ) if details else None,
        aggregated_test_result={k: str(v) for k, v in
                                (document.get("aggregated_test_result") or {}).items()},
    )


def baseline_view(settings: Settings, job: TrainingJob) -> dict | None:
    document = job.baseline_test_results
    if not document:
        return None
    view = test_results_view(settings, document, f"{job.id}-baseline-results.jsonl")
    return {**(view.model_dump() if view else {}), "status": document.get("status"),
            "error": document.get("error")}


def checkpoint_view(settings: Settings, job: TrainingJob, row: Checkpoint,
                    expires_at: int | None = None) -> TrainingJobCheckpoint:
    """One checkpoint on the wire; its URLs expire at `expires_at` (default: now + TTL)."""
    url = None
    if row.archive_key and not row.pruned:
        url = download_url(settings, key=row.archive_key, sha256=row.archive_sha256,
                           filename=f"{job.id}-checkpoint-{row.number}.tar",
                           expires_at=expires_at)
    results = test_results_view(settings, row.test_results,
                                f"{job.id}-checkpoint-{row.number}-results.jsonl", expires_at)
    return TrainingJobCheckpoint(
        checkpoint=row.number, model_download_url=url, test_results=results,
        created_at=row.created_at, updated_at=row.updated_at, step=row.step, epoch=row.epoch,
        eval_loss=row.eval_loss, archive_sha256=row.archive_sha256,
        archive_size=row.archive_size, test_status=row.test_status, test_error=row.test_error,
        pruned=row.pruned,
    )
