"""The dashboard's session cookie: which API key signed in, and a CSRF token.

The cookie is `<payload>.<HMAC-SHA256>` with the server's URL-signing secret
(so no second secret to manage), HttpOnly and SameSite=Strict. It holds the
id of the API key that signed in, never the key itself: every request looks
that key up again, so revoking the key signs its browser sessions out too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "tuneyard_session"
MAX_AGE = 7 * 24 * 3600  # a week; signing in again is one paste
_CONTEXT = b"tuneyard-web-session\x00"  # keeps these MACs apart from download tokens'


@dataclass(frozen=True)
class WebSession:
    key_id: str
    csrf: str
    expires_at: int


def _mac(secret: bytes, payload: bytes) -> str:
    digest = hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(key_id: str, *, now: float | None = None) -> WebSession:
    return WebSession(key_id=key_id, csrf=secrets.token_urlsafe(24),
                      expires_at=int((now or time.time()) + MAX_AGE))


def dump(session: WebSession, *, secret: bytes) -> str:
    payload = json.dumps({"k": session.key_id, "c": session.csrf, "e": session.expires_at},
                         separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=")
    return f"{body.decode()}.{_mac(secret, body)}"


def load(value: str | None, *, secret: bytes, now: float | None = None) -> WebSession | None:
    """The session in a cookie value, or None if absent, tampered with or expired."""
    if not value or len(value) > 4096 or "." not in value:
        return None
    body, _, mac = value.rpartition(".")
    if not hmac.compare_digest(mac, _mac(secret, body.encode())):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = WebSession(key_id=str(data["k"]), csrf=str(data["c"]),
                             expires_at=int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires_at < (now or time.time()):
        return None
    return session
