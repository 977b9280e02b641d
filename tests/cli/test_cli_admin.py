"""The server-side commands (`db`, `keys`, `worker`) still work from the package CLI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def admin(cli, tmp_path):
    cli.env["TUNEYARD_HOME"] = str(tmp_path / "server-home")
    return cli


def test_db_upgrade(admin):
    assert "up to date" in admin.ok("db", "upgrade").out


def test_keys_create_list_revoke(admin):
    created = admin.ok("keys", "create", "--name", "ci")
    key = created.out.strip()
    assert key and "not shown again" in created.err
    keys = admin.ok("keys", "list", "--json").json()
    assert [k["name"] for k in keys] == ["ci"] and not keys[0]["revoked"]
    assert key not in admin.ok("keys", "list").out  # never the key itself
    assert keys[0]["id"] in admin.ok("keys", "revoke", keys[0]["id"]).out
    admin.fails("keys", "revoke", "no-such-key")


def test_worker_help_does_not_need_the_worker(admin):
    assert "worker" in admin.ok("worker", "--help").out
