"""The deployment manager: lives in the API server's event loop.

It loads on-demand deployments as soon as they are created, serverless ones
on their first request, unloads those idle past `inactive_timeout`, and stops
the model servers of cancelled or deleted deployments. Model loading runs in
other processes (and threads here), so the API keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneyard.config import Settings
from tuneyard.deploy.prepare import PrepareError, prepare_model, remove_local
from tuneyard.errors import InvalidInput
from tuneyard.processes import signal_group
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

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await run_in_threadpool(self._recover)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for dp_id in list(self.running):
            await self.unload(dp_id)

    def _recover(self) -> None:
        """Model servers of a previous run of this server are orphans: stop them;
        their deployments load again (on-demand now, serverless on request)."""
        with Session(self.engine) as session:
            for row in session.scalars(select(Deployment).where(Deployment.loaded.is_(True))):
                if row.server_pid:
                    signal_group(row.server_pid, signal.SIGKILL)
                row.loaded, row.server_url, row.server_pid = False, None, None
                if row.status in (DeploymentStatus.DEPLOYING, DeploymentStatus.DEPLOYED) and \
                        row.server_type == "on-demand":
                    row.status = DeploymentStatus.PENDING
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
            health = wait_ready(handle, timeout=600)
        except ModelServerError:
            stop_model_server(handle, grace=1)
            raise
        return Running(handle=handle, client=AsyncModelServerClient(handle.url),
                       labels=health.get("labels") or labels, last_request=time.time())

    async def load(self, dp_id: str) -> Running:
        async with self._lock(dp_id):
            if dp_id in self.running:
                return self.running[dp_id]
            await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYING,
                                    error=None)
            try:
                running = await run_in_threadpool(self._prepare_and_start, dp_id)
            except (PrepareError, ModelServerError, OSError) as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                log.warning("deployment %s failed to load: %s", dp_id, exc)
                await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.FAILED,
                                        error=message, loaded=False)
                raise InvalidInput(f"deployment {dp_id} failed to load: {message}") from None
            with Session(self.engine) as session:
                row = session.get(Deployment, dp_id)
                gone = row is None or row.status == DeploymentStatus.CANCELLED
            if gone:  # cancelled or deleted while loading
                await run_in_threadpool(stop_model_server, running.handle, grace=1)
                raise InvalidInput(f"deployment {dp_id} was cancelled")
            self.running[dp_id] = running
            await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYED,
                                    loaded=True,
                                    server_url=running.handle.url,
                                    server_pid=running.handle.pid,
                                    last_request_at=time.time())
            log.info("deployment %s serving at %s", dp_id, running.handle.url)
            return running

    async def unload(self, dp_id: str) -> None:
        async with self._lock(dp_id):
            running = self.running.pop(dp_id, None)
            if running is None:
                return
            await running.client.aclose()
            await run_in_threadpool(stop_model_server, running.handle, grace=3)
        await run_in_threadpool(self._update, dp_id, loaded=False, server_url=None,
                                server_pid=None)

    async def client_for(self, deployment: Deployment) -> Running:
        """The running model server for a request, loading it if needed."""
        if deployment.status in DEPLOYMENT_STOPPED:
            why = f": {deployment.error}" if deployment.error else ""
            raise InvalidInput(f"deployment {deployment.id} is {deployment.status}{why}; "
                               "reactivate it or create a new one")
        running = self.running.get(deployment.id)
        if running is None or running.handle.process is not None and \
                running.handle.process.poll() is not None:
            self.running.pop(deployment.id, None)
            running = await self.load(deployment.id)
        running.last_request = time.time()
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
            wanted = {r.id: (r.status, r.server_type, r.inactive_timeout, r.loaded)
                      for r in rows}
        for dp_id, (status, server_type, _timeout, _loaded) in wanted.items():
            if status == DeploymentStatus.PENDING and server_type == "on-demand" and \
                    dp_id not in self._loading:
                self._loading.add(dp_id)
                asyncio.create_task(self._load_quietly(dp_id))
            elif status == DeploymentStatus.PENDING and server_type == "serverless":
                await run_in_threadpool(self._update, dp_id, status=DeploymentStatus.DEPLOYED)
            elif status == DeploymentStatus.CANCELLED and dp_id in self.running:
                await self.unload(dp_id)
        for dp_id, running in list(self.running.items()):
            status, _, timeout, _ = wanted.get(dp_id, (None, None, None, None))
            if status is None:  # deleted (perhaps with its project or job)
                await self.forget(dp_id)
            elif timeout and time.time() - running.last_request > timeout:
                log.info("deployment %s idle for %ss: deactivating", dp_id, timeout)
                await self.unload(dp_id)
            elif running.written != running.last_request:
                running.written = running.last_request
                await run_in_threadpool(self._update, dp_id,
                                        last_request_at=running.last_request)

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
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep managing; the DB may be briefly away
                log.exception("deployment manager tick failed")
            await asyncio.sleep(TICK)
