"""Base models, test functions, projects and datasets."""

from __future__ import annotations

import os
from pathlib import Path

from ._http import LONG_TIMEOUT
from ._resource import Resource, body, seg, target_path
from .errors import TuneyardAPIError
from .transfer import DownloadResult, Progress, ProgressReader, download
from .types import BaseModelInfo, Dataset, Project, TestFunction


class Models(Resource):
    """The base-model catalog (`/v1/models`)."""

    def list(self) -> list[BaseModelInfo]:
        return [BaseModelInfo.model_validate(m) for m in self._http.json("GET", "/v1/models")]

    def get(self, name: str) -> BaseModelInfo:
        return BaseModelInfo.model_validate(self._http.json("GET", f"/v1/models/{seg(name)}"))


class TestFunctions(Resource):
    """Test functions a job can score its checkpoints with (`/v1/testing-functions`)."""

    __test__ = False  # not a pytest test class, despite the name

    def list(self) -> list[TestFunction]:
        return [TestFunction.model_validate(f)
                for f in self._http.json("GET", "/v1/testing-functions")]

    def get(self, name: str) -> TestFunction:
        """One test function by name; the API only lists, so this filters the list."""
        functions = self.list()
        for function in functions:
            if function.name == name:
                return function
        known = ", ".join(f.name for f in functions) or "none"
        raise TuneyardAPIError(404, f"test function {name!r} not found; known: {known}",
                               code="object_not_found")


class Projects(Resource):
    """Projects (`/v1/projects`)."""

    def create(self, name: str | None = None) -> Project:
        return Project.model_validate(self._http.json("POST", "/v1/projects",
                                                      json=body(name=name)))

    def list(self) -> list[Project]:
        return [Project.model_validate(p) for p in self._http.pages("/v1/projects")]

    def get(self, project_id: str) -> Project:
        """The project with its datasets, training jobs and deployments."""
        return Project.model_validate(self._http.json("GET", f"/v1/projects/{seg(project_id)}"))

    def delete(self, project_id: str) -> None:
        self._http.request("DELETE", f"/v1/projects/{seg(project_id)}")


class Datasets(Resource):
    """A project's datasets (`/v1/projects/{id}/datasets`)."""

    @staticmethod
    def _path(project_id: str, dataset_id: str | None = None) -> str:
        path = f"/v1/projects/{seg(project_id)}/datasets"
        return path if dataset_id is None else f"{path}/{seg(dataset_id)}"

    def upload(self, project_id: str, path: str | os.PathLike, *, name: str | None = None,
               progress: Progress | None = None) -> Dataset:
        """Upload a dataset file, streamed from disk.

        `progress(sent_bytes, total_bytes)` is called as the file is sent. The
        server validates the file before answering; a bad record comes back as
        a `TuneyardAPIError` naming the line.
        """
        path = Path(path)
        total = path.stat().st_size
        with open(path, "rb") as fh:
            reader = ProgressReader(fh, total, progress)
            files = {"file": (path.name, reader, "application/octet-stream")}
            data = {"name": name} if name else {}
            # The server answers only after validating the whole file.
            response = self._http.json("POST", self._path(project_id), files=files, data=data,
                                       timeout=LONG_TIMEOUT)
        return Dataset.model_validate(response)

    def list(self, project_id: str) -> list[Dataset]:
        return [Dataset.model_validate(d) for d in self._http.pages(self._path(project_id))]

    def get(self, project_id: str, dataset_id: str) -> Dataset:
        """The dataset with a signed `dataset_download_url`."""
        return Dataset.model_validate(self._http.json("GET", self._path(project_id, dataset_id)))

    def delete(self, project_id: str, dataset_id: str) -> None:
        self._http.request("DELETE", self._path(project_id, dataset_id))

    def download(self, project_id: str, dataset_id: str, dest: str | os.PathLike | None = None,
                 *, progress: Progress | None = None) -> DownloadResult:
        """Download the dataset file (resumable, sha256-checked) to `dest`.

        `dest` defaults to the dataset's name with its format's suffix in the
        current directory; a directory means "in there, under that name".
        """
        dataset = self.get(project_id, dataset_id)
        if not dataset.dataset_download_url:
            raise TuneyardAPIError(404, f"dataset {dataset_id} has no file to download")
        default_name = _dataset_filename(dataset)
        target = target_path(dest, default_name)
        return download(self._http, dataset.dataset_download_url, target,
                        sha256=dataset.sha256, progress=progress)


def _dataset_filename(dataset: Dataset) -> str:
    name = Path(dataset.name or dataset.id).name or dataset.id
    suffix = f".{dataset.file_format}" if dataset.file_format else ""
    return name if not suffix or name.endswith(suffix) else name + suffix
