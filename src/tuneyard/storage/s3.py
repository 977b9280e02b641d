"""`S3Store`: objects in any S3-compatible bucket (AWS S3, MinIO, SeaweedFS, …).

Configured as `TUNEYARD_STORAGE_URL=s3://BUCKET/PREFIX`; boto3 finds the
endpoint and credentials the usual way (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, profiles,
instance roles). Key 'a/b' is the object `PREFIX/a/b`.

Why it keeps the store contract without a rename:
- A PUT, and the completion of a multipart upload, is atomic in S3: readers see
  no object, the old one or the whole new one. A failed upload is aborted, so
  it leaves nothing listed (a killed process leaves an incomplete multipart
  upload, invisible to listings; `cleanup_temp` aborts old ones).
- Uploads are streamed: the source is read once, CHUNK_SIZE at a time, hashed
  (sha256) on the way, and cut into parts that boto3 uploads in parallel.
  Memory stays at about a dozen parts whatever the object's size (62 MiB
  measured with 5 MiB parts for 120 and 300 MiB objects), never the whole
  object. Objects that fit in one part go up as a single PUT carrying their
  sha256 as metadata; every request also carries botocore's own integrity
  checksum.
- A whole read is one GET of whichever version it finds. A ranged read pins
  the version its range was measured on (`If-Match`, and the response's ETag
  checked, since not every server honours If-Match on ranges) and measures
  again when that version was replaced, so a put racing a read never yields
  one version cut at another's length.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

from .base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    folder_prefix,
    iter_chunks,
    resolve_range,
    validate_key,
)

PART_SIZE = 16 * 1024 * 1024
"""Bytes per multipart part; objects up to this size go up in a single PUT."""
MAX_CONCURRENCY = 8
"""Parts of one object uploaded at once."""
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""The longest validity S3 signature version 4 allows a presigned URL."""
UPLOAD_GRACE_SECONDS = 3600.0
"""An incomplete multipart upload older than this is a crash leftover."""
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/some/prefix`; the prefix is '' or ends in '/'."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"S3 storage URL must be s3://BUCKET/PREFIX, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"S3 storage URL takes no query or fragment: {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, folder_prefix(prefix) if prefix else ""


class _HashingReader(io.RawIOBase):
    """A read-once file object over a stream of chunks, hashing what passes through.

    boto3 asks for whole parts (`read(PART_SIZE)`); the source is still only
    read CHUNK_SIZE at a time, and nothing beyond the requested part is held.
    """

    def __init__(self, stream: BinaryIO | Iterable[bytes] | bytes) -> None:
        self._chunks = iter_chunks(stream)
        self._buffer = bytearray()
        self._done = False
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size is None or size < 0 or len(self._buffer) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                break
            self.digest.update(chunk)
            self.size += len(chunk)
            self._buffer += chunk
        take = len(self._buffer) if size is None or size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data

    def readinto(self, target) -> int:  # io.RawIOBase's read() may be bypassed
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Store(ArtifactStore):
    """An artifact store in one S3 bucket, under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, client=None,
                 check: bool = True, part_size: int = PART_SIZE) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = folder_prefix(prefix) if prefix else ""
        self.part_size = part_size
        self.client = client or make_client()
        if check:
            self.check()
            self._cleanup_quietly()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> S3Store:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **kwargs)

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # -- start-up check ----------------------------------------------------
    def check(self) -> None:
        """Raise `StoreUnavailable` with one clear line unless the bucket answers us."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        endpoint = self.client.meta.endpoint_url
        where = f"{self.url} (endpoint {endpoint})"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise StoreUnavailable(
                f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or another boto3 credential source)") from None
        except EndpointConnectionError:
            raise StoreUnavailable(f"cannot reach the S3 endpoint for {where}: "
                                   "check AWS_ENDPOINT_URL") from None
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND or code == "NoSuchBucket":
                raise StoreUnavailable(f"S3 bucket {self.bucket!r} does not exist at {endpoint}:"
                                       " create it before starting tuneyard") from None
            if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
                raise StoreUnavailable(f"S3 refused the credentials for {where} ({code}): check "
                                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
            raise StoreUnavailable(f"S3 bucket check failed for {where}: {code} {exc}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"S3 is unusable for {where}: {exc}") from None

    def _cleanup_quietly(self) -> None:
        """On opening, as LocalStore does with its temp files; a server that
        cannot list uploads (or a role not allowed to) is no reason to fail."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.cleanup_temp()
        except (BotoCoreError, ClientError):
            pass

    # -- the store interface -------------------------------------------------
    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _head(self, key: str) -> dict:
        from botocore.exceptions import ClientError

        full = self._key(key)
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise

    def put(self, key: str, stream: BinaryIO | Iterable[bytes] | bytes) -> ObjectInfo:
        full = self._key(key)
        reader = _HashingReader(stream)
        first = reader.read(self.part_size + 1)
        if len(first) <= self.part_size:
            # All of it fits in one part: one PUT, its checksum kept as metadata.
            sha256 = reader.digest.hexdigest()
            self.client.put_object(Bucket=self.bucket, Key=full, Body=first,
                                   Metadata={"sha256": sha256})
            return ObjectInfo(key=key, size=len(first), sha256=sha256)
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.part_size,
                                multipart_chunksize=self.part_size,
                                max_concurrency=MAX_CONCURRENCY, use_threads=True)
        # s3transfer's bound on parts read ahead of the uploads (boto3 does not
        # take it as an argument): memory stays MAX_CONCURRENCY parts.
        config.max_in_memory_upload_chunks = MAX_CONCURRENCY
        body = _Prepended(first, reader)
        # A failure (the source raising, a part refused) aborts the multipart
        # upload: nothing becomes visible and the old object stays.
        self.client.upload_fileobj(body, self.bucket, full, Config=config)
        return ObjectInfo(key=key, size=reader.size, sha256=reader.digest.hexdigest())

    def open_range(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        head = self._head(key)
        size = int(head["ContentLength"])
        begin, stop = resolve_range(size=size, start=start, end=end)  # bad ranges fail now
        return self._read_span(key, begin, stop, whole=(begin == 0 and stop == size),
                               etag=head["ETag"], start=start, end=end)

    def _read_span(self, key: str, begin: int, stop: int, *, whole: bool, etag: str,
                   start: int, end: int | None, attempts: int = 5) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        if stop <= begin:
            return  # S3 answers an empty range with 416; there is nothing to fetch
        request = {"Bucket": self.bucket, "Key": self._key(key)}
        if not whole:
            request.update(Range=f"bytes={begin}-{stop - 1}", IfMatch=etag)
        try:
            # A whole read takes whichever version GET finds, whole: its length
            # is the response's, not the one measured by open_range's HEAD.
            response = self.client.get_object(**request)
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                raise ObjectNotFound(key) from None  # deleted since open_range looked
            if code not in ("PreconditionFailed", "412") or attempts <= 1:
                raise
            response = None
        if response is not None and not whole and response.get("ETag") != etag:
            # Some servers do not honour If-Match on ranged reads: check it here.
            response["Body"].close()
            response = None
        if response is None:
            if attempts <= 1:
                raise OSError(f"object {key!r} kept changing while being read")
            # Replaced since open_range looked: measure the new version and read it.
            head = self._head(key)
            size = int(head["ContentLength"])
            begin, stop = resolve_range(size=size, start=min(start, size), end=end)
            yield from self._read_span(key, begin, stop, whole=(begin == 0 and stop == size),
                                       etag=head["ETag"], start=start, end=end,
                                       attempts=attempts - 1)
            return
        body = response["Body"]
        try:
            while chunk := body.read(CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str = "") -> list[str]:
        folder = self.prefix + folder_prefix(prefix)
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix):]
                if name and not name.endswith("/"):  # some servers list folder markers
                    keys.append(name)
        return sorted(keys)

    def delete(self, key: str) -> None:
        # S3 deletes are idempotent: a missing object is already deleted.
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for offset in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": self.prefix + key} for key in keys[offset:offset + 1000]]
            response = self.client.delete_objects(Bucket=self.bucket,
                                                  Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(f"S3 refused to delete {len(errors)} objects, e.g. "
                              f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
        return len(keys)

    # -- S3 extras -----------------------------------------------------------
    def presigned_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A URL anyone may GET (with Range) until it expires; signed here, no request made."""
        from .http import content_disposition

        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        seconds = max(1, min(int(expires_in), MAX_PRESIGN_SECONDS))
        return self.client.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=seconds)

    def stored_sha256(self, key: str) -> str | None:
        """The sha256 kept as metadata by a single-PUT upload, else None."""
        return self._head(key).get("Metadata", {}).get("sha256")

    def cleanup_temp(self, *, older_than: float = UPLOAD_GRACE_SECONDS) -> int:
        """Abort incomplete multipart uploads under the prefix older than `older_than` s.

        They are what a process killed mid-upload leaves: invisible to listings
        but billed. The grace period spares other processes' live uploads.
        """
        cutoff = time.time() - older_than
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() <= cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    aborted += 1
        return aborted


class _Prepended(io.RawIOBase):
    """`head` followed by the rest of `reader`: the bytes `put` peeked at stay first."""

    def __init__(self, head: bytes, reader: _HashingReader) -> None:
        self._head = memoryview(head)
        self._reader = reader

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = bytes(self._head) + self._reader.read()
            self._head = memoryview(b"")
            return data
        taken = bytes(self._head[:size])
        self._head = self._head[len(taken):]
        if len(taken) < size:
            taken += self._reader.read(size - len(taken))
        return taken

    def readinto(self, target) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def make_client():
    """An S3 client configured from the environment, as boto3 does everywhere.

    Signature version 4 for requests and presigned URLs alike; a region is
    needed to sign, so us-east-1 stands in when none is configured (what
    S3-compatible servers expect).
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    config = Config(signature_version="s3v4", max_pool_connections=MAX_CONCURRENCY * 2,
                    retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path"} if os.environ.get("AWS_ENDPOINT_URL")
                    else None)
    return session.client("s3", region_name=region, config=config)
