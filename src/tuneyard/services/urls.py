"""Signed, expiring download URLs for stored artifacts."""

from __future__ import annotations

import time

from tuneyard.config import Settings
from tuneyard.storage.signing import make_token


def download_url(settings: Settings, *, key: str, filename: str | None = None,
                 sha256: str | None = None, expires_at: int | None = None) -> str:
    """`expires_at` (unix seconds) defaults to now + the settings' TTL."""
    token = make_token(
        key=key, secret=settings.signing_secret(),
        expires_at=(expires_at if expires_at is not None
                    else int(time.time()) + settings.download_url_ttl_seconds),
        filename=filename, sha256=sha256,
    )
    return f"{settings.public_url.rstrip('/')}/v1/files/{token}"
