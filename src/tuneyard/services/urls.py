"""Signed, expiring download URLs for stored artifacts.

On a local store the URL is this server's `/v1/files/<token>`; on S3 it is a
presigned S3 URL, so downloads go straight to the object store (with Range)
and never through the API replicas. Presigning is a local computation: no
request is made to S3 here.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

from tuneyard.config import Settings
from tuneyard.storage.signing import make_token


def download_url(settings: Settings, *, key: str, filename: str | None = None,
                 sha256: str | None = None, expires_at: int | None = None) -> str:
    """`expires_at` (unix seconds) defaults to now + the settings' TTL."""
    presigner = _s3_presigner(settings.resolved_storage_url,
                              os.environ.get("AWS_ENDPOINT_URL"),
                              os.environ.get("AWS_ACCESS_KEY_ID"))
    if presigner is not None:
        # The checkpoint's sha256 is in its listing (archive_sha256): a presigned
        # URL cannot add a checksum header.
        expires_in = (settings.download_url_ttl_seconds if expires_at is None
                      else max(1, expires_at - int(time.time())))
        return presigner.presigned_url(key, expires_in=expires_in, filename=filename)
    token = make_token(
        key=key, secret=settings.signing_secret(),
        expires_at=(expires_at if expires_at is not None
                    else int(time.time()) + settings.download_url_ttl_seconds),
        filename=filename, sha256=sha256,
    )
    return f"{settings.public_url.rstrip('/')}/v1/files/{token}"


@lru_cache(maxsize=8)
def _s3_presigner(storage_url: str, _endpoint: str | None, _access_key: str | None):
    """An S3 store for signing URLs (cached per configuration: a client takes ~50 ms)."""
    if not storage_url.lower().startswith("s3://"):
        return None
    from tuneyard.storage.s3 import S3Store

    return S3Store.from_url(storage_url, check=False)
