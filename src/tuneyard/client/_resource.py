"""What every resource class shares: the HTTP handle and path/body helpers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._http import Http


def seg(value: object) -> str:
    """One path segment, escaped (a base model name may hold a '/')."""
    return quote(str(value), safe="")


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body without the fields left as None.

    The server rejects unknown or null fields on some routes (job create
    forbids extras), and an omitted field takes the server's default.
    """
    return {k: v for k, v in fields.items() if v is not None}


class Resource:
    def __init__(self, http: Http):
        self._http = http


def target_path(dest: str | os.PathLike | None, default_name: str) -> Path:
    """Where a download goes: `dest`, or `default_name` inside it when `dest` is a
    directory (an existing one, or a name ending in '/'), or here when None."""
    if dest is None:
        return Path(default_name)
    if isinstance(dest, str) and dest.endswith(("/", os.sep)):
        return Path(dest) / default_name
    path = Path(dest)
    return path / default_name if path.is_dir() else path
