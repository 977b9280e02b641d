"""Prefixed, random, unguessable identifiers (`ms-…`, `ds-…`, `tr-…`, `dp-…`, `user-…`).

Like a ULID: a microsecond timestamp followed by 80 random bits, so ids sort
in creation order (listings order by id) and still cannot be guessed.
"""

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_lock = threading.Lock()
_last_us = 0


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    global _last_us
    with _lock:
        # Strictly increasing within a process even if the clock stalls.
        _last_us = max(_last_us + 1, time.time_ns() // 1000)
        stamp = _last_us
    return f"{prefix}-{_b32(stamp, 11)}{_b32(secrets.randbits(80), 16)}"
