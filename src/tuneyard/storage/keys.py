"""Every artifact-store key tuneyard writes, built here and nowhere else.

    projects/<project>/
      datasets/<dataset>/<file name>        an uploaded dataset
      jobs/<job>/
        checkpoints/<number:06d>/…          a checkpoint's files, manifest last
        checkpoints/<number:06d>.tar        its download archive (model files only)
        results/baseline.jsonl              per-example test results of the base model
        results/<number:06d>.jsonl          … of a checkpoint
        results/<name>.details.json         the evaluation's details beside them

Deleting a project, dataset or job deletes its prefix. The checkpoint layout
inside its folder is the checkpoint format's (`tuneyard.checkpoints`).
"""

from __future__ import annotations

from typing import Protocol


class JobRef(Protocol):
    """Anything naming a job and its project (a TrainingJob row)."""

    id: str
    project_id: str


def project_prefix(project_id: str) -> str:
    return f"projects/{project_id}/"


def dataset_prefix(*, project_id: str, dataset_id: str) -> str:
    return f"{project_prefix(project_id)}datasets/{dataset_id}/"


def dataset_key(*, project_id: str, dataset_id: str, filename: str) -> str:
    """`filename` must already be a safe key segment."""
    return dataset_prefix(project_id=project_id, dataset_id=dataset_id) + filename


def job_prefix(job: JobRef) -> str:
    return f"{project_prefix(job.project_id)}jobs/{job.id}/"


def checkpoints_prefix(job: JobRef) -> str:
    return f"{job_prefix(job)}checkpoints/"


def checkpoint_prefix(job: JobRef, *, number: int) -> str:
    return f"{checkpoints_prefix(job)}{number:06d}/"


def archive_key(job: JobRef, *, number: int) -> str:
    return f"{checkpoints_prefix(job)}{number:06d}.tar"


def checkpoint_number_of(job: JobRef, key: str) -> int | None:
    """The checkpoint a key under the job's checkpoints belongs to (its files
    or its archive), else None."""
    base = checkpoints_prefix(job)
    if not key.startswith(base):
        return None
    name = key[len(base):].split("/", 1)[0].removesuffix(".tar")
    return int(name) if name.isdigit() else None


def _results_name(number: int | None) -> str:
    return "baseline" if number is None else f"{number:06d}"


def results_key(job: JobRef, *, number: int | None) -> str:
    """Per-example results of checkpoint `number` (None: the baseline)."""
    return f"{job_prefix(job)}results/{_results_name(number)}.jsonl"


def details_key(job: JobRef, *, number: int | None) -> str:
    return f"{job_prefix(job)}results/{_results_name(number)}.details.json"
