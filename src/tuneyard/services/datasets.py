"""Datasets: uploaded files, validated record by record before anything is kept."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.data import DatasetValidationError, inspect_dataset
from tuneyard.errors import InvalidInput, NotFound, PayloadTooLarge
from tuneyard.ids import new_id
from tuneyard.storage import ArtifactStore, keys
from tuneyard.tables import Dataset, Project, User

ALLOWED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
MAX_FILENAME = 255  # characters of the uploaded file's name (the column holds 300)
MAX_NAME = 200  # characters of a dataset's name (its column's size)
MAX_KEY_NAME = 60  # characters of the name in the store key: at most 240 bytes
CHUNK = 1024 * 1024


def _spool(source: BinaryIO, target: Path, *, limit: int) -> tuple[int, str]:
    """Copy an upload to a local file in chunks, hashing it and enforcing the limit."""
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"file: upload exceeds the limit of {limit} bytes "
                    "(TUNEYARD_MAX_UPLOAD_BYTES)"
                )
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def create_dataset(*, session: Session, store: ArtifactStore, project: Project, user: User,
                   source: BinaryIO, filename: str | None, name: str | None,
                   max_bytes: int, tmp_dir: Path) -> Dataset:
    """Validate an uploaded file and keep it; invalid input stores nothing."""
    filename = Path(filename or "dataset.jsonl").name
    if len(filename) > MAX_FILENAME:
        raise InvalidInput(f"file: the file name is {len(filename)} characters long; "
                           f"at most {MAX_FILENAME} are allowed")
    suffix = Path(filename).suffix.lower()
    if suffix and suffix not in ALLOWED_SUFFIXES:
        raise InvalidInput(
            f"file: unsupported file type {suffix!r}; upload JSONL, JSON, CSV or Parquet"
        )
    if name is not None and not name.strip():
        raise InvalidInput("name: must not be empty")
    if name is not None and len(name.strip()) > MAX_NAME:
        raise InvalidInput(f"name: at most {MAX_NAME} characters")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as work:
        # The caller's name may not fit a file system's name limit: keep only its suffix.
        local = Path(work) / f"upload{suffix}"
        size, sha256 = _spool(source, local, limit=max_bytes)
        if size == 0:
            raise InvalidInput("file: the uploaded file is empty")
        try:
            info = inspect_dataset(local, filename=filename)
        except DatasetValidationError as exc:
            raise InvalidInput(f"file: {exc}") from None
        dataset_id = new_id("ds")
        key = keys.dataset_key(project_id=project.id, dataset_id=dataset_id,
                               filename=_safe_name(filename))
        store.put_file(key, local)
    dataset = Dataset(
        id=dataset_id, project_id=project.id,
        name=(name or Path(filename).stem).strip()[:MAX_NAME] or "dataset",
        filename=filename, is_uploaded=True, storage_key=key, file_format=info.file_format,
        shape=info.shape, num_records=info.num_records, labels=info.labels,
        multi_label=info.multi_label, sha256=sha256, size_bytes=size, upload_by=user.id,
    )
    session.add(dataset)
    try:
        session.commit()  # committed before the answer; a failure leaves no file behind
    except Exception:
        store.delete(key)  # the row is the record of truth; don't orphan the file
        raise
    return dataset


def _safe_name(filename: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    keep = keep.strip(".") or "dataset"
    if len(keep) > MAX_KEY_NAME:  # a file system's limit is 255 bytes, 4 per character
        suffix = Path(keep).suffix[:20]
        keep = keep[: MAX_KEY_NAME - len(suffix)] + suffix
    return keep


def list_datasets(*, session: Session, project: Project, after: str | None = None,
                  limit: int | None = None) -> list[Dataset]:
    """The project's datasets by id; `after`/`limit` read one page of them."""
    query = select(Dataset).where(Dataset.project_id == project.id)
    if after is not None:
        query = query.where(Dataset.id > after)
    return list(session.scalars(query.order_by(Dataset.id).limit(limit)))


def get_dataset(*, session: Session, project: Project, dataset_id: str) -> Dataset:
    if not dataset_id.isascii() or not dataset_id.isprintable() or not 0 < len(dataset_id) <= 64:
        raise NotFound(f"dataset {dataset_id[:64]!r} not found in project {project.id!r}")
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project.id:
        raise NotFound(f"dataset {dataset_id!r} not found in project {project.id!r}")
    return dataset


def delete_dataset(*, session: Session, store: ArtifactStore, project: Project,
                   dataset_id: str) -> None:
    dataset = get_dataset(session=session, project=project, dataset_id=dataset_id)
    session.delete(dataset)
    session.commit()  # the row first: a failed commit leaves the files it still names
    store.delete_prefix(keys.dataset_prefix(project_id=project.id, dataset_id=dataset_id))
