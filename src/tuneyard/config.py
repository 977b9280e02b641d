"""Settings: the one configuration object, read from `TUNEYARD_*` variables.

Every local artifact (database file, artifact store, signing secret, admin key,
built-in model cache, job work directories) lives under one home directory.
"""

from __future__ import annotations

import os
import secrets
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

    download_url_ttl_seconds: int = 24 * 3600
    """How long a signed download URL stays valid (default 24 h)."""

    embedded_worker: bool = True
    """Whether `tuneyard serve` runs a training worker inside the server process."""

    worker_poll_seconds: float = 1.0
    """How often an idle worker looks for pending jobs."""

    heartbeat_seconds: float = 5.0
    """How often a running job's worker heartbeats; a job whose heartbeat is
    older than three times this is considered orphaned and claimed again."""

    log_format: Literal["text", "json"] = "text"
    """Log lines as plain text, or as JSON objects (one per line) naming the job
    or deployment each concerns, for log shippers."""

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
        if not path.exists():
            # O_EXCL: two processes starting together must not write two secrets.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
