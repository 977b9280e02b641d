"""`tuneyard login` / `logout`: which server and key the other commands use."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._output import fail, note, out


def login(
    url: str = typer.Option(None, "--url", help="Server URL (asked if not given).",
                            show_default=False),
    key: str = typer.Option(None, "--key", help="API key (asked, hidden, if not given).",
                            show_default=False),
    key_file: Path = typer.Option(None, "--key-file", exists=True, dir_okay=False,
                                  help="Read the API key from this file (e.g. "
                                       "<server home>/admin.key)."),
) -> None:
    """Check a server URL and API key, and save them for the other commands.

    They go to ~/.config/tuneyard/config.json (or $XDG_CONFIG_HOME/tuneyard/),
    readable only by you. TUNEYARD_URL and TUNEYARD_API_KEY override the file.
    """
    from tuneyard.client import TuneyardAPIError, TuneyardClient
    from tuneyard.client.config import (
        KEY_ENV,
        URL_ENV,
        load_credentials,
        read_config,
        write_config,
    )

    if key and key_file:
        fail("give the key with --key or --key-file, not both")
    current = load_credentials(os.environ)
    if url is None:
        url = typer.prompt("Server URL", default=current.url, err=True)
    if key_file is not None:
        key = key_file.read_text().strip()
    if not key:
        key = typer.prompt("API key", hide_input=True, err=True).strip()
    if not url.startswith(("http://", "https://")):
        fail(f"--url must start with http:// or https://, got {url!r}")

    with TuneyardClient(url, key) as client:
        health = client.health()
        try:
            client.projects.list()  # any authenticated call proves the key
        except TuneyardAPIError as exc:
            if exc.status in (401, 403):
                fail(f"the server at {client.base_url} refused the key: {exc.message}")
            raise
        saved = read_config(os.environ)
        saved.update(url=client.base_url, api_key=key)
        path = write_config(saved, os.environ)
    version = health.get("version", "?") if isinstance(health, dict) else "?"
    out.print(f"logged in to {client.base_url} (tuneyard {version}); saved to {path}")
    overridden = [name for name in (URL_ENV, KEY_ENV) if os.environ.get(name)]
    if overridden:
        note(f"note: {' and '.join(overridden)} set in this environment still override "
             "the saved login")


def logout() -> None:
    """Forget the saved API key (the URL and default project stay)."""
    from tuneyard.client.config import read_config, write_config

    saved = read_config(os.environ)
    if saved.pop("api_key", None) is None:
        out.print("not logged in")
        return
    path = write_config(saved, os.environ)
    out.print(f"logged out; the key was removed from {path}")
