"""HTTP download responses for stored objects, with single byte-range support.

`file_response` turns a store key into a Starlette response: 200 with the whole
object, 206 for one satisfiable `Range`, 416 for an unsatisfiable one. Bodies
stream from `ArtifactStore.open_range`, so a multi-GB checkpoint never sits in
memory and an interrupted download resumes with `Range: bytes=N-`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from .base import ArtifactStore

# One range-spec only: a multi-range request ('0-1,5-6') does not match and is
# served whole, which RFC 9110 §14.2 allows (a server MAY ignore Range).
_SINGLE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)-(\d*)\s*", re.IGNORECASE)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_UNSAFE_IN_QUOTED = re.compile(r'[^\x20-\x7e]|["\\]')


class RangeNotSatisfiable(ValueError):
    """The requested range starts past the end of the object (HTTP 416)."""


# Any position with more digits lies past the end of every object that can exist;
# parsing it whole would cost time (and Python refuses over 4,300 digits).
_MAX_DIGITS = 19
_HUGE = 10**_MAX_DIGITS


def _position(text: str) -> int:
    digits = text.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def parse_range(header: str | None, *, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) bytes a `Range` header asks for, or None to send all.

    None for a missing, malformed, multi-range or non-bytes header, and for a
    suffix range on an empty object (nothing to cut a range from); raises
    `RangeNotSatisfiable` when the range lies wholly past the end.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = _position(first_text)
        last = _position(last_text) if last_text else size - 1
        if last_text and last < first:
            return None  # syntactically invalid per RFC 9110 §14.1.1: ignore it
        if first >= size:
            raise RangeNotSatisfiable
        return first, min(last, size - 1)
    if not last_text:
        return None  # 'bytes=-'
    suffix = _position(last_text)
    if suffix == 0:
        raise RangeNotSatisfiable
    if size == 0:
        return None
    return max(size - suffix, 0), size - 1


def content_disposition(filename: str) -> str:
    """An `attachment` disposition that is safe for any filename (RFC 6266 / 8187)."""
    fallback = _UNSAFE_IN_QUOTED.sub("_", filename)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    # Latin-1 headers cannot carry the real name; browsers prefer filename*.
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def file_response(
    store: ArtifactStore,
    *,
    key: str,
    range_header: str | None,
    filename: str | None,
    sha256: str | None,
    media_type: str = "application/octet-stream",
) -> Response:
    """A streaming download of `key`; raises `ObjectNotFound` (the route's 404)."""
    size = store.size(key)
    headers = {"accept-ranges": "bytes"}
    if filename:
        headers["content-disposition"] = content_disposition(filename)
    if sha256 is not None:
        if not _SHA256_HEX.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        headers["x-checksum-sha256"] = sha256
        headers["etag"] = f'"{sha256}"'
    try:
        span = parse_range(range_header, size=size)
    except RangeNotSatisfiable:
        headers["content-range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    if span is None:
        headers["content-length"] = str(size)
        chunks = store.open_range(key)
        return StreamingResponse(chunks, status_code=200, headers=headers, media_type=media_type)
    first, last = span
    headers["content-range"] = f"bytes {first}-{last}/{size}"
    headers["content-length"] = str(last - first + 1)
    chunks = store.open_range(key, start=first, end=last)
    return StreamingResponse(chunks, status_code=206, headers=headers, media_type=media_type)
