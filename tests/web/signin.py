"""Signing an in-process test client into the dashboard (as a browser would)."""

from __future__ import annotations

import re

from tests.conftest import ADMIN_KEY


def sign_in(client, key: str = ADMIN_KEY) -> str:
    """Sign `client` in (its cookie jar keeps the session); return the CSRF token."""
    res = client.post("/login", data={"api_key": key, "next": "/"}, follow_redirects=False)
    assert res.status_code == 303, res.text
    page = client.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
