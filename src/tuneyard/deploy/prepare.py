"""Getting a deployment's model onto local disk: a checkpoint's model files
from the store, or a base model resolved from the catalog.

Resolving a built-in model may build it (torch): that runs in a short child
process so the API server never imports the ML stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.catalog import load_catalog
from tuneyard.checkpoints import CheckpointError
from tuneyard.checkpoints.reader import (
    download_checkpoint,
    find_manifest,
    is_state,
    manifest_labels,
    read_manifest,
    sha256_file,
)
from tuneyard.config import Settings
from tuneyard.storage import ArtifactStore
from tuneyard.tables import Checkpoint, Deployment, TrainingJob


class PrepareError(Exception):
    pass


def resolve_source(source: str, *, home: Path) -> str:
    # It dies with the server (PR_SET_PDEATHSIG): a crash never leaves it running.
    code = ("from tuneyard.processes import die_with_parent; die_with_parent(); "
            "import sys; from tuneyard.models.resolve import resolve_model_path; "
            "print(resolve_model_path(sys.argv[1], home=__import__('pathlib').Path(sys.argv[2])))")
    result = subprocess.run([sys.executable, "-c", code, source, str(home)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise PrepareError(f"cannot load model {source!r}: {last}")
    return result.stdout.strip().splitlines()[-1]


def _base_source(settings: Settings, job: TrainingJob | None, base_model: str) -> str:
    if job is not None and job.hf_model_link:
        return job.hf_model_link
    model = load_catalog(settings.home).get(base_model)
    if model is None:
        raise PrepareError(f"base model {base_model!r} is no longer in the catalog")
    return model.source


def prepare_model(*, settings: Settings, store: ArtifactStore, session: Session,
                  deployment: Deployment) -> tuple[str, str | None, list[str] | None]:
    """(model_dir, base_model_path, labels) for the model server."""
    job = session.get(TrainingJob, deployment.training_job_id) \
        if deployment.training_job_id else None
    base_path = resolve_source(_base_source(settings, job, deployment.base_model),
                               home=settings.home)
    if deployment.checkpoint == 0:
        return base_path, None, None
    row = session.scalar(select(Checkpoint).where(Checkpoint.job_id == deployment.training_job_id,
                                                  Checkpoint.number == deployment.checkpoint))
    if row is None or row.pruned:
        raise PrepareError(f"checkpoint {deployment.checkpoint} of "
                           f"{deployment.training_job_id} is gone")
    target = settings.home / "deployments" / deployment.id / "model"
    try:
        # A previous start's download is whole (it is renamed into place) and
        # reused; the resume state is not needed to serve.
        if not find_manifest(target):
            download_checkpoint(store=store, prefix=row.storage_prefix, target=target,
                                model_only=True)
            verify_model_files(target)
        labels = manifest_labels(read_manifest(target))
    except CheckpointError as exc:
        raise PrepareError(str(exc)) from exc
    return str(target), base_path, labels


def verify_model_files(directory: Path) -> None:
    """Check a downloaded checkpoint's model files against its manifest (size
    and sha256): a corrupt or truncated copy is removed and refused, never served.
    The resume state, left out of the download, is not checked."""
    manifest = read_manifest(directory)
    problems = []
    for rel, meta in sorted(manifest.get("files", {}).items()):
        if is_state(rel):
            continue
        path = directory / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            problems.append(f"{rel}: does not match the sha256 in its manifest")
    if problems:
        shutil.rmtree(directory, ignore_errors=True)
        raise CheckpointError(f"the downloaded checkpoint is corrupt: {'; '.join(problems)}")


def remove_local(settings: Settings, deployment_id: str) -> None:
    shutil.rmtree(settings.home / "deployments" / deployment_id, ignore_errors=True)
