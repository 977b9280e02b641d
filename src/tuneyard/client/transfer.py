"""Moving files: uploads that report progress, downloads that resume and verify.

A dataset or checkpoint can be gigabytes, so neither direction holds a file in
memory: uploads are read from disk in chunks as httpx sends them, downloads are
written to `<dest>.part` as they arrive. An interrupted download leaves the
`.part` file behind; the next attempt asks only for the rest (`Range: bytes=N-`)
and the whole file is checked against the server's sha256 before it takes its
final name, so a resumed file is never silently corrupt.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._http import Http
from .errors import ChecksumMismatch, TuneyardConnectionError

# progress(done_bytes, total_bytes or None)
Progress = Callable[[int, int | None], None]

CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class ProgressReader:
    """A binary file that reports how much of it has been read.

    httpx's multipart encoder reads the file in 64 KiB chunks while it sends
    the request, so bytes read is bytes handed to the socket. It also asks the
    file's size through `fileno()` (for Content-Length) and rewinds it with
    `seek(0)`, so those pass through.
    """

    def __init__(self, fh: BinaryIO, total: int, progress: Progress | None):
        self._fh = fh
        self.total = total
        self.done = 0
        self._progress = progress
        self.name = getattr(fh, "name", "upload")

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self.done += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self.done, self.total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._fh.seek(offset, whence)
        self.done = position
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


@dataclass(frozen=True)
class DownloadResult:
    """Where a download landed and what is known about it."""

    path: Path
    size: int
    sha256: str
    verified: bool
    """True when the sha256 was checked against the server's (or the caller's)."""
    resumed_from: int = 0
    """Bytes that were already on disk (the `.part` file) when the attempt that
    finished began, and so were not fetched again; 0 for a download from scratch."""


class _Restart(Exception):
    """The partial file cannot be continued (the object changed); start from zero."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def part_path(dest: Path) -> Path:
    """The partial file a download of `dest` writes to (and resumes from)."""
    return dest.with_name(dest.name + ".part")


def download(http: Http, url: str, dest: str | os.PathLike, *, sha256: str | None = None,
             progress: Progress | None = None, retries: int = 3,
             backoff_s: float = 0.5) -> DownloadResult:
    """Download `url` to `dest`, resuming from `dest.part`, verifying the sha256.

    `sha256` is the expected digest when the caller knows it (a checkpoint's
    `archive_sha256`); otherwise the server's `X-Checksum-Sha256` header is
    used. A broken connection is retried `retries` times, each time asking
    only for the missing bytes. On a checksum mismatch the partial file is
    removed and `ChecksumMismatch` raised. If `dest` already exists with the
    expected sha256, nothing is downloaded.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sha256 and dest.is_file() and file_sha256(dest) == sha256:
        return DownloadResult(dest, dest.stat().st_size, sha256, verified=True)
    part = part_path(dest)
    failures = 0
    while True:
        try:
            digest, size, announced, started_at = _fetch(http, url, part, progress)
            break
        except _Restart:
            part.unlink(missing_ok=True)
        except TuneyardConnectionError:
            failures += 1
            if failures > retries:
                raise
            time.sleep(backoff_s * 2 ** (failures - 1))
    expected = sha256 or announced
    if expected and digest != expected:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(str(dest), expected, digest)
    os.replace(part, dest)
    return DownloadResult(dest, size, digest, verified=bool(expected), resumed_from=started_at)


def _fetch(http: Http, url: str, part: Path,
           progress: Progress | None) -> tuple[str, int, str | None, int]:
    """One attempt: continue `part` to the end.

    Returns (sha256, size, the server's sha256, bytes that were already on disk).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with http.stream("GET", url, headers=headers, ok_statuses=(416,)) as response:
        announced = response.headers.get("x-checksum-sha256")
        if response.status_code == 416:
            # Nothing past `offset`: the part file already holds the whole object
            # (the previous attempt died between the last byte and the rename).
            match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("content-range", ""))
            if match and int(match.group(1)) == offset:
                return file_sha256(part), offset, announced, offset
            raise _Restart
        digest = hashlib.sha256()
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Restart
            total = None if match.group(3) == "*" else int(match.group(3))
            with open(part, "rb") as fh:  # the digest covers the bytes already here
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
            mode = "ab"
        else:
            # 200: the server sent the whole object (no Range support): start over.
            offset = 0
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        done = offset
        if progress is not None:
            progress(done, total)
        with open(part, mode) as out:
            # Unsized chunks: what arrived is written at once, so a dropped
            # connection loses nothing already received (a sized iterator
            # would hold up to a chunk in memory and drop it with the error).
            for chunk in response.iter_bytes():
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
    if total is not None and done != total:
        raise TuneyardConnectionError(f"download ended after {done} of {total} bytes")
    return digest.hexdigest(), done, announced, offset


def extract_tar(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a checkpoint archive into `target` (created if needed).

    The `data` filter refuses absolute paths, `..`, device files and links
    leaving the target: an archive is input from the network.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:*") as tar:
        tar.extractall(target, filter="data")
    return target
