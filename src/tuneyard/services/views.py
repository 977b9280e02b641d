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


def job_summaries(session: Session, project: Project) -> list[TrainingJobSummary]:
    jobs = session.scalars(
        select(TrainingJob).where(TrainingJob.project_id == project.id)
        .order_by(TrainingJob.id)
    )
    return [TrainingJobSummary.model_validate(j) for j in jobs]


def job_detail(session: Session, job: TrainingJob) -> TrainingJobDetail:
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
        # The contract allows string|number values only: unset (None) ones are left out.
        "hyper_parameters": {k: v for k, v in (job.hyper_parameters or {}).items()
                             if v is not None},
        "base_fine_tuned_model": source_name,
        "base_fine_tuned_model_checkpoint": job.source_checkpoint,
        "hf_model_link": job.hf_model_link,
        "test_functions": job.test_functions,
        "split": job.split,
        "error": job.error,
        "best_checkpoint": job.best_checkpoint,
        "baseline_test_results": job.baseline_test_results,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
    })


def checkpoint_view(settings: Settings, job: TrainingJob, row: Checkpoint) -> TrainingJobCheckpoint:
    url = None
    if row.archive_key and not row.pruned:
        url = download_url(settings, key=row.archive_key, sha256=row.archive_sha256,
                           filename=f"{job.id}-checkpoint-{row.number}.tar")
    results = None
    if row.test_results:
        key = row.test_results.get("general_test_result_key")
        results = TestResults(
            general_test_result=download_url(
                settings, key=key, filename=f"{job.id}-checkpoint-{row.number}-results.jsonl",
            ) if key else None,
            aggregated_test_result={k: str(v) for k, v in
                                    (row.test_results.get("aggregated_test_result") or {}).items()},
        )
    return TrainingJobCheckpoint(
        checkpoint=row.number, model_download_url=url, test_results=results,
        created_at=row.created_at, updated_at=row.updated_at, step=row.step, epoch=row.epoch,
        eval_loss=row.eval_loss, archive_sha256=row.archive_sha256,
        archive_size=row.archive_size, test_status=row.test_status, test_error=row.test_error,
        pruned=row.pruned,
    )
