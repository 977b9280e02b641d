"""`TuneyardClient`: one object with a namespace per resource, as the CLI has a
command group per resource (`client.datasets.upload` ↔ `tuneyard datasets upload`)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from ._http import Http
from .config import Credentials, load_credentials
from .deployments import Deployments, Inference
from .engines import Engines
from .jobs import Jobs
from .projects import Datasets, Models, Projects, TestFunctions
from .transfer import DownloadResult, Progress, download


class TuneyardClient:
    """A typed client for a tuneyard (Emissary-compatible) server.

    >>> client = TuneyardClient("http://127.0.0.1:8000", "ty_...")
    >>> project = client.projects.create("demo")
    >>> ds = client.datasets.upload(project.id, "train.jsonl")

    Every failure raises a `TuneyardClientError`: `TuneyardAPIError` (with the
    server's status and message), `TuneyardConnectionError`, `ChecksumMismatch`.
    `transport` is for tests (an `httpx.MockTransport`, say).
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0, *,
                 transport: httpx.BaseTransport | None = None):
        self.http = Http(base_url, api_key, timeout=timeout, transport=transport)
        self.models = Models(self.http)
        self.test_functions = TestFunctions(self.http)
        self.projects = Projects(self.http)
        self.datasets = Datasets(self.http)
        self.jobs = Jobs(self.http)
        self.deployments = Deployments(self.http)
        self.inference = Inference(self.http)
        self.engines = Engines(self.http)

    @classmethod
    def from_config(cls, *, env: dict[str, str] | None = None, **kwargs: Any) -> TuneyardClient:
        """A client for the server `tuneyard login` saved (env variables override)."""
        creds: Credentials = load_credentials(os.environ if env is None else env)
        return cls(creds.url, creds.api_key, **kwargs)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def health(self) -> dict[str, Any]:
        """`GET /healthz` (no key needed): `{"status": "ok", "version": ...}`."""
        return self.http.json("GET", "/healthz")

    def download(self, url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                 progress: Progress | None = None) -> DownloadResult:
        """Download any signed URL the API handed out, resumable and checked."""
        return download(self.http, url, dest, sha256=sha256, progress=progress)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TuneyardClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
