"""The OpenAI-compatible Files API over tuneyard datasets.

A file is a dataset in the caller's OpenAI project: one project per user,
named `OPENAI_PROJECT`, created on first use (it shows in `GET /v1/projects`
and the dashboard like any other). Only `purpose=fine-tune` is accepted.
OpenAI's chat JSONL (`{"messages": [...]}`) and prompt/completion JSONL are
datasets as they are; the preference format (`input`/`preferred_output`/
`non_preferred_output`) is converted to preference rows (data.preference).
A file's id is its dataset's id.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.data.preference import is_preference_record, preference_row
from tuneyard.errors import NotFound, TuneyardError
from tuneyard.services import datasets as dataset_service
from tuneyard.services.projects import create_project
from tuneyard.storage import ArtifactStore
from tuneyard.tables import Dataset, Project, User

OPENAI_PROJECT = "OpenAI API (files and fine-tuning jobs)"
PURPOSES = ("fine-tune",)
# Dataset shapes a supervised job trains on (data.shapes).
SUPERVISED_SHAPES = ("chat", "prompt_completion")
DEFAULT_FILES_PAGE = 10000  # OpenAI's default for files
MAX_FILES_PAGE = 10000


class OpenAIError(TuneyardError):
    """An error with OpenAI's `param` and `code` (the /openai/v1 body carries both)."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def body(self) -> dict:
        return {"status": self.status, "error": self.message, "code": self.code,
                "param": self.param}


def openai_project(*, session: Session, user: User, create: bool = True) -> Project | None:
    """The caller's OpenAI project (the oldest of that name), created on first use."""
    project = session.scalars(select(Project).where(
        Project.owner_id == user.id, Project.name == OPENAI_PROJECT).order_by(Project.id)).first()
    if project is None and create:
        project = create_project(session=session, owner=user, name=OPENAI_PROJECT)
    return project


def file_object(dataset: Dataset) -> dict:
    return {"id": dataset.id, "object": "file", "bytes": dataset.size_bytes,
            "created_at": dataset.created_at, "filename": dataset.filename,
            "purpose": "fine-tune", "status": "processed", "expires_at": None,
            "status_details": None}


def _convert_preference(source: BinaryIO, work: Path, *, max_bytes: int) -> Path | None:
    """If the upload is OpenAI preference JSONL, its rows as tuneyard preference JSONL;
    None when it is not (the upload is then read as it is: `source` is rewound)."""
    first = source.readline(max_bytes + 1)
    source.seek(0)
    try:
        if not is_preference_record(json.loads(first)):
            return None
    except ValueError:
        return None
    out = work / "preference.jsonl"
    with open(out, "w", encoding="utf-8") as target:
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                target.write(json.dumps(preference_row(record, line=number)) + "\n")
            except ValueError as exc:
                message = str(exc) if str(exc).startswith("line ") else f"line {number}: {exc}"
                raise OpenAIError(f"file: {message}", param="file",
                                  code="invalid_file_format") from None
    return out


def upload_file(*, session: Session, store: ArtifactStore, user: User, source: BinaryIO,
                filename: str | None, purpose: str | None, max_bytes: int,
                tmp_dir: Path) -> Dataset:
    if purpose not in PURPOSES:
        raise OpenAIError(f"purpose: must be one of {', '.join(PURPOSES)} on this server "
                          f"(got {purpose!r})", param="purpose", code="invalid_purpose")
    project = openai_project(session=session, user=user)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as work:
        converted = _convert_preference(source, Path(work), max_bytes=max_bytes)
        if converted is not None:
            with open(converted, "rb") as rows:
                try:
                    return dataset_service.create_dataset(
                        session=session, store=store, project=project, user=user, source=rows,
                        filename=filename or "preference.jsonl", name=None,
                        max_bytes=max_bytes, tmp_dir=tmp_dir)
                except TuneyardError as exc:
                    # A server without preference datasets (DPO) refuses the rows.
                    raise OpenAIError(f"file: preference (DPO) data cannot be stored on this "
                                      f"server: {exc.message}", param="file",
                                      code="invalid_file_format") from None
    dataset = dataset_service.create_dataset(
        session=session, store=store, project=project, user=user, source=source,
        filename=filename, name=None, max_bytes=max_bytes, tmp_dir=tmp_dir)
    if dataset.file_format != "jsonl" or dataset.shape not in SUPERVISED_SHAPES:
        dataset_service.delete_dataset(session=session, store=store, project=project,
                                       dataset_id=dataset.id)
        raise OpenAIError(
            "file: a fine-tune file is JSONL in the chat format ({\"messages\": [{\"role\": "
            "..., \"content\": ...}, ...]}), the prompt/completion format or the preference "
            f"format; this one is {dataset.file_format} with {dataset.shape} records",
            param="file", code="invalid_file_format")
    return dataset


def get_file(*, session: Session, user: User, file_id: str) -> Dataset:
    project = openai_project(session=session, user=user, create=False)
    dataset = session.get(Dataset, file_id) if 0 < len(file_id) <= 64 else None
    if dataset is None or project is None or dataset.project_id != project.id:
        raise OpenAIError(f"No such File object: {file_id[:64]}", status=404, param="id",
                          code="file_not_found")
    return dataset


def list_files(*, session: Session, user: User, after: str | None, limit: int,
               order: str) -> tuple[list[Dataset], bool]:
    project = openai_project(session=session, user=user, create=False)
    if project is None:
        return [], False
    query = select(Dataset).where(Dataset.project_id == project.id)
    if after:
        query = query.where(Dataset.id < after if order == "desc" else Dataset.id > after)
    query = query.order_by(Dataset.id.desc() if order == "desc" else Dataset.id)
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def delete_file(*, session: Session, store: ArtifactStore, user: User, file_id: str) -> dict:
    dataset = get_file(session=session, user=user, file_id=file_id)
    project = session.get(Project, dataset.project_id)
    try:
        dataset_service.delete_dataset(session=session, store=store, project=project,
                                       dataset_id=dataset.id)
    except NotFound:
        pass
    return {"id": file_id, "object": "file", "deleted": True}
