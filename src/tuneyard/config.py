"""Settings: the one configuration object, read from `TUNEYARD_*` variables.

Every local artifact (database file, artifact store, signing secret, admin key,
built-in model cache, job work directories) lives under one home directory.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """tuneyard's configuration; each field is the variable `TUNEYARD_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="TUNEYARD_", extra="ignore")
    _secret: bytes | None = PrivateAttr(None)

    home: Path = Field(default_factory=lambda: Path.home() / ".tuneyard")
    """Directory holding every local artifact (default `~/.tuneyard`)."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata database; default: SQLite file `<home>/tuneyard.db`."""

    storage_url: str | None = None
    """Where artifacts live: a local directory (default `<home>/artifacts`), or
    `s3://BUCKET/PREFIX` in any S3-compatible store, reached with boto3's usual
    settings (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    `AWS_DEFAULT_REGION`, profiles, roles). Downloads are then presigned S3 URLs."""

    public_url: str = "http://127.0.0.1:8000"
    """Base URL clients use to reach this server; download URLs are built on it."""

    secret_key: str | None = None
    """Secret for signing download URLs; generated once into `<home>/secret.key` if unset."""

    bootstrap_api_key: str | None = None
    """If set at start, registered as an admin key (for containers and tests)."""

    max_upload_bytes: int = 2 * 1024**3
    """Largest dataset upload accepted, in bytes (default 2 GiB)."""

    max_json_bytes: int = 1024**2
    """Largest JSON request body accepted, in bytes (default 1 MiB); larger is a 413."""

    default_timeout_seconds: int = Field(72 * 3600, ge=0, le=30 * 24 * 3600)
    """`timeout_seconds` of a job that sets none (default 72 h; 0: no limit): a job
    still running past it ends as timed out."""

    allow_hub_models: bool = True
    """Whether jobs may name a Hugging Face hub model (`hf_model_link`); when false
    the server never reaches the hub for one and such a job is refused (400)."""

    max_queued_jobs_per_user: int = Field(50, ge=1)
    """Training jobs one user may have waiting to run; one more is a 429."""

    max_deployments_per_user: int = Field(8, ge=1)
    """Live (pending, deploying or deployed) deployments one user may have; one more is a 429."""

    max_deployments: int = Field(32, ge=1)
    """Live deployments on the whole server; one more is a 429."""

    max_concurrent_loads: int = Field(2, ge=1)
    """Model loads (download, unpack, model-server start) run at once, on their own
    threads: never on the threads that answer API requests."""

    download_url_ttl_seconds: int = 24 * 3600
    """How long a signed download URL stays valid (default 24 h)."""

    embedded_worker: bool = True
    """Whether `tuneyard serve` runs a training worker inside the server process."""

    worker_poll_seconds: float = 1.0
    """How often an idle worker looks for pending jobs."""

    heartbeat_seconds: float = 5.0
    """How often a running job's worker heartbeats; a job whose heartbeat is
    older than three times this is considered orphaned and claimed again."""

    evaluation_timeout_seconds: float = 3600.0
    """Wall-clock limit of one evaluation (the baseline or one checkpoint): past it
    the evaluation process is stopped and that evaluation recorded as failed."""

    job_max_attempts: int = 3
    """How many times a job is started before it fails: a crash of its training
    process and a worker lost mid-job (heartbeat lapsed) each count."""

    log_format: Literal["text", "json"] = "text"
    """Log lines as plain text, or as JSON objects (one per line) naming the job
    or deployment each concerns, for log shippers."""

    ray_address: str | None = None
    """A Ray cluster (`HOST:PORT`, or `auto`): workers then run each job as a Ray Train
    run (`num_workers` data-parallel workers) and its evaluations as Ray tasks. The
    store must be one every node sees (S3, or a shared path). Unset: local processes."""

    ray_evaluation_cpus: float = Field(1.0, ge=0, le=256)
    """CPUs one job's evaluation task asks of the Ray cluster (it also asks for a GPU
    when the cluster has one); 0 lets it run beside training on a full node."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tuneyard.db'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str(self.home / "artifacts")

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home

    def signing_secret(self) -> bytes:
        """The URL-signing secret: configured, or created once (0600) in the home."""
        if self.secret_key:
            return self.secret_key.encode()
        if self._secret is None:  # read once: every signed URL needs it
            self._secret = self._load_secret()
        return self._secret

    def _load_secret(self) -> bytes:
        path = self.ensure_home() / "secret.key"
        secret = _read_secret(path)
        if secret:
            return secret
        # Written whole to a temporary file, then linked into place: a racing
        # process sees no file or the whole secret, never an empty one, and a
        # link never replaces a secret another process put there first.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not _read_secret(path):  # an empty file, as older versions could leave
                    os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        return b""


@lru_cache
def get_settings() -> Settings:
    return Settings()
