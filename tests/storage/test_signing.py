"""Signed download tokens: roundtrip, tampering, wrong secret, expiry, malformed input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest

from tuneyard.storage.signing import (
    ExpiredToken,
    InvalidToken,
    TokenClaims,
    TokenError,
    make_token,
    read_token,
)

SECRET = b"test-secret-0123456789"
NOW = 1_700_000_000
SHA = hashlib.sha256(b"model").hexdigest()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, secret: bytes = SECRET) -> str:
    """A correctly signed token around an arbitrary payload (as another signer might make)."""
    segment = b64(payload)
    return segment + "." + b64(hmac.new(secret, segment.encode(), hashlib.sha256).digest())


def test_roundtrip_with_all_claims():
    token = make_token(
        key="jobs/tr-1/ckpt/2.tar",
        secret=SECRET,
        expires_at=NOW + 60,
        filename="checkpoint 2 – ünïcode.tar",
        sha256=SHA,
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)  # URL-safe as is
    claims = read_token(token, secret=SECRET, now=NOW)
    assert claims == TokenClaims(
        key="jobs/tr-1/ckpt/2.tar",
        expires_at=NOW + 60,
        filename="checkpoint 2 – ünïcode.tar",
        sha256=SHA,
    )


def test_roundtrip_without_optional_claims_and_default_clock():
    token = make_token(key="k", secret=SECRET, expires_at=int(time.time()) + 3600)
    claims = read_token(token, secret=SECRET)
    assert claims.key == "k" and claims.filename is None and claims.sha256 is None


def test_payload_is_compact_json_with_a_hmac_of_it():
    token = make_token(key="a/b", secret=SECRET, expires_at=NOW)
    payload_segment, signature_segment = token.split(".")
    payload = base64.urlsafe_b64decode(payload_segment + "==")
    assert b" " not in payload and json.loads(payload)["e"] == NOW
    expected = hmac.new(SECRET, payload_segment.encode(), hashlib.sha256).digest()
    assert signature_segment == b64(expected)


def test_tampered_payload_is_invalid():
    token = make_token(key="jobs/tr-1/ckpt", secret=SECRET, expires_at=NOW + 60)
    payload_segment, signature_segment = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload_segment + "=="))
    claims["k"] = "jobs/tr-2/ckpt"  # someone else's checkpoint
    forged = b64(json.dumps(claims, separators=(",", ":")).encode()) + "." + signature_segment
    with pytest.raises(InvalidToken):
        read_token(forged, secret=SECRET, now=NOW)
    claims["k"], claims["e"] = "jobs/tr-1/ckpt", NOW + 10**9  # extend the lifetime
    forged = b64(json.dumps(claims, separators=(",", ":")).encode()) + "." + signature_segment
    with pytest.raises(InvalidToken):
        read_token(forged, secret=SECRET, now=NOW)


def test_tampered_signature_is_invalid():
    token = make_token(key="k", secret=SECRET, expires_at=NOW + 60)
    payload_segment, signature_segment = token.split(".")
    flipped = ("B" if signature_segment[0] == "A" else "A") + signature_segment[1:]
    for bad_signature in (flipped, signature_segment[:-2], signature_segment + "AA", ""):
        with pytest.raises(InvalidToken):
            read_token(payload_segment + "." + bad_signature, secret=SECRET, now=NOW)


def test_non_canonical_base64_spelling_is_invalid():
    token = make_token(key="k", secret=SECRET, expires_at=NOW + 60)
    payload_segment, signature_segment = token.split(".")
    # 32 bytes end in a character carrying 2 unused bits; setting them changes nothing decoded.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature_segment[-1])
    respelled = signature_segment[:-1] + alphabet[last | 1]
    assert base64.urlsafe_b64decode(respelled + "=") == base64.urlsafe_b64decode(
        signature_segment + "="
    )
    with pytest.raises(InvalidToken):
        read_token(payload_segment + "." + respelled, secret=SECRET, now=NOW)


def test_wrong_secret_is_invalid():
    token = make_token(key="k", secret=SECRET, expires_at=NOW + 60)
    with pytest.raises(InvalidToken):
        read_token(token, secret=b"another-secret", now=NOW)


def test_expiry():
    token = make_token(key="k", secret=SECRET, expires_at=NOW)
    assert read_token(token, secret=SECRET, now=NOW - 1).key == "k"
    with pytest.raises(ExpiredToken):
        read_token(token, secret=SECRET, now=NOW)
    with pytest.raises(ExpiredToken):
        read_token(token, secret=SECRET, now=NOW + 3600)
    with pytest.raises(ExpiredToken):
        read_token(token, secret=SECRET)  # the real clock is long past 2023


def test_expired_forgery_is_invalid_not_expired():
    token = make_token(key="k", secret=b"attacker", expires_at=NOW - 1)
    with pytest.raises(InvalidToken):
        read_token(token, secret=SECRET, now=NOW)


def test_error_hierarchy():
    assert issubclass(InvalidToken, TokenError) and issubclass(ExpiredToken, TokenError)
    assert not issubclass(ExpiredToken, InvalidToken)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "nodot",
        "a.b.c",
        ".",
        "abc.",
        ".abc",
        "ab!c.def",
        "abc.de f",
        "a.bcd",  # one base64 character cannot encode a byte
    ],
)
def test_malformed_tokens_are_invalid(token):
    with pytest.raises(InvalidToken):
        read_token(token, secret=SECRET, now=NOW)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"e": 1800000000}',
        b'{"k": "a", "e": "1800000000"}',
        b'{"k": "a", "e": true}',
        b'{"k": "../etc/passwd", "e": 1800000000}',
        b'{"k": "a", "e": 1800000000, "f": 3}',
        b'{"k": "a", "e": 1800000000, "s": ["x"]}',
    ],
)
def test_signed_but_malformed_payloads_are_invalid(payload):
    with pytest.raises(InvalidToken):
        read_token(signed(payload), secret=SECRET, now=NOW)


def test_make_token_checks_its_inputs():
    with pytest.raises(ValueError):
        make_token(key="k", secret=b"", expires_at=NOW)
    with pytest.raises(ValueError):
        make_token(key="/etc/passwd", secret=SECRET, expires_at=NOW)
    with pytest.raises(TypeError):
        make_token(key="k", secret=SECRET, expires_at=float(NOW))
    with pytest.raises(ValueError):
        read_token(make_token(key="k", secret=SECRET, expires_at=NOW), secret=b"")
