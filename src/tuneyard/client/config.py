"""Where the client finds its server and key: `tuneyard login`'s config file, or env.

The file is `$XDG_CONFIG_HOME/tuneyard/config.json` (default
`~/.config/tuneyard/config.json`), written 0600 in a 0700 directory because it
holds an API key. `TUNEYARD_URL` and `TUNEYARD_API_KEY` override it, so CI
and containers need no file; `TUNEYARD_PROJECT` overrides the default project.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TuneyardClientError

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV, KEY_ENV, PROJECT_ENV = "TUNEYARD_URL", "TUNEYARD_API_KEY", "TUNEYARD_PROJECT"


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str | None
    project: str | None
    url_from: str
    """Where the URL came from: the variable's name, the config file's path, or "default"."""


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else \
        Path(env.get("HOME") or Path.home()) / ".config"
    return base / "tuneyard" / "config.json"


def read_config(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The saved settings ({} when there is no file yet)."""
    path = config_path(env)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TuneyardClientError(f"cannot read {path}: {exc}; run `tuneyard login` again") \
            from None
    if not isinstance(data, dict):
        raise TuneyardClientError(f"{path} is not a JSON object; run `tuneyard login` again")
    return data


def write_config(data: dict[str, Any], env: Mapping[str, str] = os.environ) -> Path:
    """Replace the saved settings atomically; the file is created 0600 (never wider)."""
    path = config_path(env)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with 0600 from the start: the key is never readable by others,
    # not even between a write and a chmod.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # in case the tmp name existed with other bits
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_credentials(env: Mapping[str, str] = os.environ) -> Credentials:
    """URL, key and default project: environment first, then the config file."""
    saved = read_config(env)
    if env.get(URL_ENV):
        url, url_from = env[URL_ENV], URL_ENV
    elif saved.get("url"):
        url, url_from = saved["url"], str(config_path(env))
    else:
        url, url_from = DEFAULT_URL, "default"
    return Credentials(
        url=url.rstrip("/"),
        api_key=env.get(KEY_ENV) or saved.get("api_key") or None,
        project=env.get(PROJECT_ENV) or saved.get("project") or None,
        url_from=url_from,
    )
