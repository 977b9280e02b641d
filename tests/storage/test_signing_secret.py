"""The URL-signing secret is created atomically: processes racing to create it
all end up with the same, non-empty secret."""

from __future__ import annotations

import secrets
import stat
import threading
import time

from tuneyard.config import Settings


def test_racing_creators_share_one_whole_secret(tmp_path, monkeypatch):
    real = secrets.token_hex

    def slow_token(n):  # widens the window between creating the file and filling it
        time.sleep(0.2)
        return real(n)

    monkeypatch.setattr("tuneyard.config.secrets.token_hex", slow_token)
    got: list[bytes] = []
    start = threading.Barrier(6)

    def create():
        settings = Settings(home=tmp_path / "home")
        start.wait()
        got.append(settings.signing_secret())

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and len(set(got)) == 1 and len(got[0]) == 64
    path = tmp_path / "home" / "secret.key"
    assert path.read_bytes().strip() == got[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_an_empty_secret_file_is_replaced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text("")
    secret = Settings(home=home).signing_secret()
    assert len(secret) == 64
    assert Settings(home=home).signing_secret() == secret
