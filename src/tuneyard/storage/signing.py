"""Signed, expiring download tokens for artifact URLs.

A token is `base64url(payload) + "." + base64url(HMAC-SHA256(secret, payload))`
where `payload` is compact JSON naming the object key, an expiry (unix seconds)
and optionally the download filename and checksum. The MAC covers the encoded
payload segment exactly as sent, so verification never parses untrusted JSON
and never depends on how JSON was serialised. Tokens are bearer credentials:
whoever holds one may download that one object until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

from .base import validate_key

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class TokenError(Exception):
    """A download token cannot be honoured."""


class InvalidToken(TokenError):
    """The token is malformed or its signature does not match."""


class ExpiredToken(TokenError):
    """The token was genuine but its time has passed."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token grants."""

    key: str
    expires_at: int
    filename: str | None = None
    sha256: str | None = None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise InvalidToken("token is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("token is not base64url") from None
    if _b64encode(data) != segment:
        # Unused trailing bits set: one token, one spelling.
        raise InvalidToken("token is not canonical base64url")
    return data


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or not secret:
        # An empty key would make every token forgeable.
        raise ValueError("signing secret must be non-empty bytes")


def _sign(secret: bytes, payload_segment: str) -> bytes:
    return hmac.new(secret, payload_segment.encode("ascii"), hashlib.sha256).digest()


def make_token(
    *,
    key: str,
    secret: bytes,
    expires_at: int,
    filename: str | None = None,
    sha256: str | None = None,
) -> str:
    """A URL-safe token granting download of `key` until `expires_at` (unix seconds)."""
    _check_secret(secret)
    validate_key(key)
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise TypeError("expires_at must be an int (unix seconds)")
    # Short field names keep URLs short; absent optionals are left out.
    claims: dict[str, object] = {"k": key, "e": expires_at}
    if filename is not None:
        claims["f"] = filename
    if sha256 is not None:
        claims["s"] = sha256
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    payload_segment = _b64encode(payload.encode("utf-8"))
    return payload_segment + "." + _b64encode(_sign(secret, payload_segment))


def read_token(token: str, *, secret: bytes, now: int | None = None) -> TokenClaims:
    """Verify `token` and return its claims.

    Raises `InvalidToken` for anything malformed or forged and `ExpiredToken`
    once `now` (default: the current time) reaches `expires_at`. The signature
    is checked first, so an expired forgery is reported as invalid.
    """
    _check_secret(secret)
    if not isinstance(token, str) or token.count(".") != 1:
        raise InvalidToken("token must be two base64url segments joined by '.'")
    payload_segment, signature_segment = token.split(".")
    signature = _b64decode(signature_segment)
    _b64decode(payload_segment)  # reject non-base64url before computing the MAC
    if not hmac.compare_digest(signature, _sign(secret, payload_segment)):
        raise InvalidToken("token signature does not match")
    claims = _parse_claims(_b64decode(payload_segment))
    current = int(time.time()) if now is None else now
    if current >= claims.expires_at:
        raise ExpiredToken(f"token expired at {claims.expires_at}")
    return claims


def _parse_claims(payload: bytes) -> TokenClaims:
    """Claims from a payload we signed; shape checks guard against other signers' tokens."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise InvalidToken("token payload is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidToken("token payload is not an object")
    key, expires_at = data.get("k"), data.get("e")
    filename, sha256 = data.get("f"), data.get("s")
    if not isinstance(key, str) or isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise InvalidToken("token payload lacks a key or an expiry")
    if not (filename is None or isinstance(filename, str)) or not (
        sha256 is None or isinstance(sha256, str)
    ):
        raise InvalidToken("token payload has a malformed filename or checksum")
    try:
        validate_key(key)
    except ValueError:
        raise InvalidToken("token names an invalid key") from None
    return TokenClaims(key=key, expires_at=expires_at, filename=filename, sha256=sha256)
