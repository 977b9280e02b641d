"""The deployment manager: lives in the API server's event loop.

It loads on-demand deployments as soon as they are created, serverless ones
on their first request, unloads those idle past `inactive_timeout`, and stops
the model servers of cancelled or deleted deployments. Model loading runs in
other processes (and threads here), so the API keeps answering meanwhile.

Several API replicas on one database: the lifecycle (recovering orphans,
loading, idle timeouts, unloading) is driven by one replica at a time, the
holder of the database lease `deployment-lifecycle` (`tuneyard.lease`); the
others take it over within `LEASE_SECONDS` when it dies. A request reaching a
replica that does not hold the lease is forwarded to the model server the
holder runs (its URL is on the deployment's row); for a deployment not loaded,
the replica records the request (`last_request_at`) and the holder loads it.
Model servers listen on the loopback interface, so replicas serving
deployments share one host (a model server placed on a cluster is Ray's job,
not built yet).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneyard import lease
from tuneyard.config import Settings
from tuneyard.deploy.prepare import PrepareError, prepare_model, remove_local
from tuneyard.errors import InvalidInput
from tuneyard.logs import log_context
from tuneyard.metrics import METRICS
from tuneyard.processes import process_identity, stop_recorded_group
from tuneyard.serving.client import AsyncModelServerClient
from tuneyard.serving.errors import ModelServerError
from tuneyard.serving.process import (
    ModelServerHandle,
    start_model_server,
    stop_model_server,
    wait_ready,
)
from tuneyard.status import DEPLOYMENT_LIVE, DEPLOYMENT_STOPPED, DeploymentStatus
from tuneyard.storage import ArtifactStore
from tuneyard.tables import Deployment, now

log = logging.getLogger("tuneyard.deploy")
TICK = 0.5
LEASE_NAME = "deployment-lifecycle"
LEASE_SECONDS = 15.0
"""A dead holder's lease is taken over after at most this long."""
RENEW_SECONDS = 5.0
"""How often the holder renews (a third of the lease: two renewals may fail)."""
REMOTE_LOAD_TIMEOUT = 600.0
"""How long a replica waits for the lease holder to load a deployment."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


@dataclass
class Running:
    handle: ModelServerHandle
    client: AsyncModelServerClient
    labels: list[str] | None
    last_request: float
    written: float = 0.0  # the last_request value last stored in the DB


class DeploymentManager:
    def __init__(self, settings: Settings, engine, store: ArtifactStore):
        self.settings, self.engine, self.store = settings, engine, store
        self.running: dict[str, Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task | None = None
        self._loading: set[str] = set()
        # Loads take minutes: they get threads of their own, bounded, so that they
        # never occupy the threadpool that answers API requests.
        self._loader = ThreadPoolExecutor(max_workers=settings.max_concurrent_loads,
                                          thread_name_prefix="tuneyard-load")
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leader = False  # whether this replica holds the lifecycle lease
        self._renewed = 0.0
        # Model servers another replica runs, which requests here are forwarded to.
        self.remote: dict[str, Running] = {}

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await self._hold_lease()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for dp_id in list(self.running):
            await self.unload(dp_id)
        for running in self.remote.values():
            await running.client.aclose()
        self.remote.clear()
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self.leader:  # a successor need not wait for the lease to expire
            self.leader = False
            await run_in_threadpool(lease.release, self.engine, name=LEASE_NAME,
                                    holder=self.holder)

    async def _hold_lease(self) -> bool:
        """Take or renew the lifecycle lease; on taking it, recover what the
        previous holder left; on losing it, stop this replica's model servers."""
        if self.leader and time.monotonic() - self._renewed < RENEW_SECONDS:
            return True
        was_leader = self.leader
        previous = None if was_leader else await run_in_threadpool(
            lease.last_holder, self.engine, LEASE_NAME)
        self.leader = await run_in_threadpool(self._acquire)
        if self.leader:
            self._renewed = time.monotonic()
        if self.leader and not was_leader:
            METRICS.leader.inc()
            log.info("this replica (%s) now drives the deployment lifecycle", self.holder)
            # The model servers left behind are the previous holder's: their
            # process ids mean something only on its host.
            same_host = previous is None or previous.partition(":")[0] == socket.gethostname()
            await run_in_threadpool(self._recover, kill=same_host)
        elif was_leader and not self.leader:
            log.warning("lost the deployment-lifecycle lease; stopping this replica's servers")
            for dp_id in list(self.running):
                await self.unload(dp_id)
        return self.leader

    def _acquire(self) -> bool:
        if lease.acquire(self.engine, name=LEASE_NAME, holder=self.holder,
                         seconds=LEASE_SECONDS):
            return True
        # A holder that was a process of this host and is gone (a crashed or
        # killed server) is not waited for: its lease is taken at once.
        current = lease.holder_of(self.engine, LEASE_NAME)
        host, _, rest = (current or "").partition(":")
        pid = rest.partition(":")[0]
        if current and host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            return lease.acquire(self.engine, name=LEASE_NAME, holder=self.holder,
                                 seconds=LEASE_SECONDS, dead_holder=current)
        return False

    def serving(self, dp_id: str) -> Running | None:
        """The model server answering for a deployment, here or on the lease holder."""
        return self.running.get(dp_id) or self.remote.get(dp_id)

    def _recover(self, *, kill: bool = True) -> None:
        """Model servers of a previous run of this server are orphans: stop them
        (`kill`: they ran on this host; by their recorded pid, only if its start
        time still matches: a recycled pid is never killed); their deployments load again (on-demand
        now, serverless on request), a load a crash interrupted included."""
        with Session(self.engine) as session:
            for row in session.scalars(select(Deployment).where(or_(
                    Deployment.loaded.is_(True), Deployment.server_pid.is_not(None),
                    Deployment.status == DeploymentStatus.DEPLOYING))):
                if row.server_pid and kill:
                    if stop_recorded_group(row.server_pid, row.server_identity, grace=1):
                        log.info("deployment %s: stopped the model server (pid %s) a "
                                 "previous run left", row.id, row.server_pid)
                row.loaded, row.server_url = False, None
                row.server_pid, row.server_identity = None, None
                if row.status in (DeploymentStatus.DEPLOYING, DeploymentStatus.DEPLOYED):
                    row.status = (DeploymentStatus.PENDING if row.server_type == "on-demand"
                                  else DeploymentStatus.DEPLOYED)
            session.commit()

    def _lock(self, dp_id: str) -> asyncio.Lock:
        return self._locks.setdefault(dp_id, asyncio.Lock())

    def _update(self, dp_id: str, **values) -> None:
        with Session(self.engine) as session:
            row = session.get(Deployment, dp_id)
            if row is not None:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = now()
                session.commit()

    # -- loading -----------------------------------------------------------
    def _prepare_and_start(self, dp_id: str) -> Running:
        with Session(self.engine) as session:
            row = session.get(Deployment, dp_id)
            model_dir, base_path, labels = prepare_model(
                settings=self.settings, store=self.store, session=session, deployment=row)
            task = row.task_type
        handle = start_model_server(
            model_dir=model_dir, task_type=task, base_model_path=base_path,
            log_path=self.settings.home / "logs" / f"{dp_id}.log")
        try:
            # Recorded at once: a crash from here on leaves a pid the next
            # start can find (and check) to stop.
            self._update(dp_id, server_pid=handle.pid,
                         server_identity=process_identity(handle.pid))
            health = wait_ready(handle, timeout=600)
        except BaseException:
            stop_model_server(handle, grace=1)
            raise
        return Running(handle=handle, client=AsyncModelServerClient(handle.url),
                       labels=health.get("labels") or labels, last_request=time.time())

    async def load(self, dp_id: str) -> Running:
        if not self.leader:  # the lease holder loads; this replica forwards to it
            return await self._forward_to_holder(dp_id)
        async with self._lock(dp_id):
            if dp_id in self.running:
                return self.running[dp_id]
            await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYING,
                                    error=None)
            started = time.monotonic()
            try:
                with log_context(deployment_id=dp_id):
                    context = contextvars.copy_context()  # the executor does not carry it
                    running = await asyncio.get_running_loop().run_in_executor(
                        self._loader, context.run, self._prepare_and_start, dp_id)
            except Exception as exc:  # noqa: BLE001 - any failure ends in Failed, with why
                METRICS.deployment_loads.labels(outcome="failed").inc()
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                if not isinstance(exc, (PrepareError, ModelServerError, OSError)):
                    message = f"{type(exc).__name__}: {message}"
                log.warning("deployment %s failed to load: %s", dp_id, exc,
                            extra={"deployment_id": dp_id})
                await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.FAILED,
                                        error=message, loaded=False, server_pid=None,
                                        server_identity=None)
                raise InvalidInput(f"deployment {dp_id} failed to load: {message}") from None
            with Session(self.engine) as session:
                row = session.get(Deployment, dp_id)
                gone = row is None or row.status == DeploymentStatus.CANCELLED
            if gone:  # cancelled or deleted while loading
                await run_in_threadpool(stop_model_server, running.handle, grace=1)
                raise InvalidInput(f"deployment {dp_id} was cancelled")
            self.running[dp_id] = running
            METRICS.deployment_loads.labels(outcome="loaded").inc()
            METRICS.deployment_load_seconds.observe(time.monotonic() - started)
            await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYED,
                                    loaded=True,
                                    server_url=running.handle.url,
                                    server_pid=running.handle.pid,
                                    last_request_at=time.time())
            log.info("deployment %s serving at %s", dp_id, running.handle.url,
                     extra={"deployment_id": dp_id})
            return running

    async def unload(self, dp_id: str) -> None:
        async with self._lock(dp_id):
            running = self.running.pop(dp_id, None)
            if running is None:
                return
            await running.client.aclose()
            await run_in_threadpool(stop_model_server, running.handle, grace=3)
        await run_in_threadpool(self._update, dp_id, loaded=False, server_url=None,
                                server_pid=None, server_identity=None)

    async def client_for(self, deployment: Deployment) -> Running:
        """The running model server for a request, loading it if needed."""
        if deployment.status in DEPLOYMENT_STOPPED:
            why = f": {deployment.error}" if deployment.error else ""
            raise InvalidInput(f"deployment {deployment.id} is {deployment.status}{why}; "
                               "reactivate it or create a new one")
        if not self.leader:
            return await self._forward_to_holder(deployment.id)
        running = self.running.get(deployment.id)
        if running is None or running.handle.process is not None and \
                running.handle.process.poll() is not None:
            self.running.pop(deployment.id, None)
            running = await self.load(deployment.id)
        running.last_request = time.time()
        return running

    async def _forward_to_holder(self, dp_id: str) -> Running:
        """The lease holder's model server for `dp_id`, asking it to load one if
        none runs: this replica records the request, the holder's tick loads."""
        deadline = time.monotonic() + REMOTE_LOAD_TIMEOUT
        asked = False
        while True:
            row = await run_in_threadpool(self._row, dp_id)
            if row is None:
                raise InvalidInput(f"deployment {dp_id} no longer exists")
            status, error, url, pid = row
            if status in DEPLOYMENT_STOPPED:
                why = f": {error}" if error else ""
                raise InvalidInput(f"deployment {dp_id} is {status}{why}")
            if url:
                running = self.remote.get(dp_id)
                if running is None or running.handle.url != url:
                    running = await self._connect(dp_id, url, pid)
                running.last_request = time.time()
                if time.time() - running.written >= 1.0:  # the holder's idle clock
                    running.written = running.last_request
                    await run_in_threadpool(self._update, dp_id,
                                            last_request_at=running.last_request)
                return running
            if not asked:
                await run_in_threadpool(self._update, dp_id, last_request_at=time.time())
                asked = True
            if time.monotonic() > deadline:
                raise InvalidInput(f"deployment {dp_id} was not loaded in time; try again")
            await asyncio.sleep(0.25)

    def _row(self, dp_id: str) -> tuple | None:
        with Session(self.engine) as session:
            row = session.get(Deployment, dp_id)
            if row is None:
                return None
            return row.status, row.error, row.server_url if row.loaded else None, row.server_pid

    async def _connect(self, dp_id: str, url: str, pid: int | None) -> Running:
        old = self.remote.pop(dp_id, None)
        if old is not None:
            await old.client.aclose()
        client = AsyncModelServerClient(url)
        try:
            health = await client.health()
        except ModelServerError:
            await client.aclose()
            raise
        handle = ModelServerHandle(pid=pid or 0, port=urlsplit(url).port or 0, url=url)
        running = Running(handle=handle, client=client, labels=health.get("labels"),
                          last_request=time.time())
        self.remote[dp_id] = running
        return running

    async def forget(self, dp_id: str) -> None:
        """Deleted: stop its server and remove its local files."""
        await self.unload(dp_id)
        await run_in_threadpool(remove_local, self.settings, dp_id)

    # -- the loop ----------------------------------------------------------
    async def _tick(self) -> None:
        with Session(self.engine) as session:
            rows = list(session.scalars(select(Deployment).where(
                Deployment.status.in_((*DEPLOYMENT_LIVE, DeploymentStatus.CANCELLED)),
                Deployment.engine_id.is_(None))))  # an engine's: deploy.engines
            wanted = {r.id: (r.status, r.server_type, r.inactive_timeout, r.loaded,
                             r.last_request_at) for r in rows}
        for dp_id, (status, server_type, timeout, loaded, asked) in wanted.items():
            # Another replica recorded a request for a deployment not loaded.
            requested = (status == DeploymentStatus.DEPLOYED and not loaded and asked
                         and time.time() - asked < (timeout or REMOTE_LOAD_TIMEOUT)
                         and dp_id not in self.running)
            if (status == DeploymentStatus.PENDING and server_type == "on-demand" or requested) \
                    and dp_id not in self._loading:
                self._loading.add(dp_id)
                asyncio.create_task(self._load_quietly(dp_id))
            elif status == DeploymentStatus.PENDING and server_type == "serverless":
                await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYED)
            elif status == DeploymentStatus.CANCELLED and dp_id in self.running:
                await self.unload(dp_id)
        for dp_id, running in list(self.running.items()):
            status, _, timeout, _, asked = wanted.get(dp_id, (None,) * 5)
            # Requests forwarded by other replicas count: they write last_request_at.
            running.last_request = max(running.last_request, asked or 0.0)
            if status is None:  # deleted (perhaps with its project or job)
                await self.forget(dp_id)
            elif timeout and time.time() - running.last_request > timeout:
                log.info("deployment %s idle for %ss: deactivating", dp_id, timeout,
                         extra={"deployment_id": dp_id})
                await self.unload(dp_id)
            elif running.written != running.last_request:
                running.written = running.last_request
                await run_in_threadpool(self._update, dp_id,
                                        last_request_at=running.last_request)

    async def _drop_stale_remotes(self) -> None:
        """Forget forwarded-to servers the holder has stopped (or moved)."""
        for dp_id, running in list(self.remote.items()):
            row = await run_in_threadpool(self._row, dp_id)
            if row is None or row[2] != running.handle.url:
                self.remote.pop(dp_id, None)
                await running.client.aclose()

    async def _load_quietly(self, dp_id: str) -> None:
        try:
            await self.load(dp_id)
        except InvalidInput:
            pass  # recorded on the deployment
        finally:
            self._loading.discard(dp_id)

    async def _loop(self) -> None:
        while True:
            try:
                if await self._hold_lease():
                    await self._tick()
                else:
                    await self._drop_stale_remotes()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep managing; the DB may be briefly away
                log.exception("deployment manager tick failed")
            await asyncio.sleep(TICK)
