"""The deployment-lifecycle lease: one holder at a time on one database, renewed,
released on a clean stop, taken over when the holder dies. Two deployment
managers (as two API replicas would run) share a real database here."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import fresh_database_url, make_settings
from tuneyard import lease
from tuneyard.db import make_engine, upgrade
from tuneyard.deploy import manager as manager_module
from tuneyard.deploy.manager import LEASE_NAME, DeploymentManager
from tuneyard.storage import MemoryStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(tmp_path):
    url = fresh_database_url(tmp_path)
    upgrade(url)  # PostgreSQL starts empty; a SQLite copy is migrated already
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_one_holder_renewal_release_and_expiry(engine):
    assert lease.acquire(engine, name="role", holder="a", seconds=30)
    assert not lease.acquire(engine, name="role", holder="b", seconds=30)
    assert lease.acquire(engine, name="role", holder="a", seconds=30)  # renewed
    assert lease.holder_of(engine, "role") == "a"
    lease.release(engine, name="role", holder="b")  # not b's to release
    assert lease.holder_of(engine, "role") == "a"
    lease.release(engine, name="role", holder="a")
    assert lease.holder_of(engine, "role") is None
    assert lease.acquire(engine, name="role", holder="b", seconds=0.2)
    assert not lease.acquire(engine, name="role", holder="a", seconds=30)
    time.sleep(0.3)  # b died without releasing: its lease runs out
    assert lease.acquire(engine, name="role", holder="a", seconds=30)
    assert lease.holder_of(engine, "role") == "a"


def test_contended_acquire_has_exactly_one_winner(engine):
    results: dict[str, bool] = {}
    barrier = threading.Barrier(8)

    def contend(name: str) -> None:
        barrier.wait()
        results[name] = lease.acquire(engine, name="contended", holder=name, seconds=30)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, won in results.items() if won]
    assert len(results) == 8 and len(winners) == 1
    assert lease.holder_of(engine, "contended") == winners[0]


def _replica(tmp_path, engine, name: str) -> DeploymentManager:
    settings = make_settings(tmp_path / name, engine.url.render_as_string(hide_password=False))
    return DeploymentManager(settings, engine, MemoryStore())


def test_two_replicas_one_lifecycle_driver_and_takeover(tmp_path, engine, monkeypatch):
    monkeypatch.setattr(manager_module, "TICK", 0.05)

    async def scenario() -> None:
        first, second = _replica(tmp_path, engine, "a"), _replica(tmp_path, engine, "b")
        await first.start()
        await second.start()
        assert (first.leader, second.leader) == (True, False)
        await asyncio.sleep(0.3)  # both loops tick: still one driver
        assert (first.leader, second.leader) == (True, False)
        assert lease.holder_of(engine, LEASE_NAME) == first.holder
        await first.stop()  # a clean stop hands the lease on at once
        await asyncio.sleep(0.3)
        assert second.leader and lease.holder_of(engine, LEASE_NAME) == second.holder
        await second.stop()

    asyncio.run(scenario())


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path, engine):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer exists: a crashed replica
    dead = f"{socket.gethostname()}:{gone.pid}:dead"
    assert lease.acquire(engine, name=LEASE_NAME, holder=dead, seconds=3600)
    alive = f"{socket.gethostname()}-elsewhere:{gone.pid}:other"  # another host's: wait

    async def scenario() -> None:
        replica = _replica(tmp_path, engine, "c")
        await replica.start()
        assert replica.leader and lease.holder_of(engine, LEASE_NAME) == replica.holder
        await replica.stop()
        assert lease.acquire(engine, name=LEASE_NAME, holder=alive, seconds=3600)
        other = _replica(tmp_path, engine, "d")
        await other.start()
        assert not other.leader  # a holder on another host may be alive: its lease runs
        await other.stop()

    asyncio.run(scenario())
