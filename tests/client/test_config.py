"""The login file: where it lives, who may read it, and what overrides it."""

from __future__ import annotations

import stat

import pytest

from tuneyard.client import TuneyardClientError
from tuneyard.client.config import (
    DEFAULT_URL,
    config_path,
    load_credentials,
    read_config,
    write_config,
)


def test_xdg_config_home_wins_over_home(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config_path(env) == tmp_path / "xdg" / "tuneyard" / "config.json"
    assert config_path({"HOME": str(tmp_path / "home")}) == \
        tmp_path / "home" / ".config" / "tuneyard" / "config.json"
    # A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
    assert config_path({"HOME": str(tmp_path), "XDG_CONFIG_HOME": "rel"}) == \
        tmp_path / ".config" / "tuneyard" / "config.json"


def test_written_file_is_private(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = write_config({"url": "http://x:1", "api_key": "k"}, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_config(env) == {"url": "http://x:1", "api_key": "k"}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_env_overrides_the_file(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    write_config({"url": "http://saved:1/", "api_key": "saved", "project": "ms-a"}, env)
    saved = load_credentials(env)
    assert (saved.url, saved.api_key, saved.project) == ("http://saved:1", "saved", "ms-a")
    env |= {"TUNEYARD_URL": "http://env:2", "TUNEYARD_API_KEY": "env",
            "TUNEYARD_PROJECT": "ms-b"}
    over = load_credentials(env)
    assert (over.url, over.api_key, over.project, over.url_from) == \
        ("http://env:2", "env", "ms-b", "TUNEYARD_URL")


def test_defaults_without_file(tmp_path):
    creds = load_credentials({"XDG_CONFIG_HOME": str(tmp_path)})
    assert (creds.url, creds.api_key, creds.url_from) == (DEFAULT_URL, None, "default")


def test_corrupt_file_is_a_clear_error(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    config_path(env).parent.mkdir(parents=True)
    config_path(env).write_text("{not json")
    with pytest.raises(TuneyardClientError, match="tuneyard login"):
        load_credentials(env)
