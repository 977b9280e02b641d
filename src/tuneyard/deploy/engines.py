"""The engine manager: one model server per active inference engine.

It lives in the API server's event loop beside the deployment manager. Each
engine's server (`tuneyard.serving.server --engine`) holds the base weights
once; the deployments on the engine are LoRA adapters in it, named by their
deployment id, loaded and unloaded at run time (`POST/DELETE /adapters`).

The loop reconciles what is recorded with what runs: it starts an engine that
is wanted and inside its schedule window, stops one deactivated, outside its
window or idle past its inactive timeout, loads the adapters of the engine's
live deployments and unloads those cancelled or deleted. A request to a
deployment on an engine comes through `client_for`, which loads the engine
(an idle one) and the adapter when needed, or answers 503 saying when a
scheduled engine will be active. `clock` is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneyard.checkpoints import CheckpointError
from tuneyard.checkpoints.reader import download_checkpoint, find_manifest
from tuneyard.config import Settings
from tuneyard.deploy.prepare import PrepareError, _base_source, resolve_source
from tuneyard.errors import InvalidInput, NotFound, TuneyardError
from tuneyard.processes import signal_group
from tuneyard.services.engines import (
    ACTIVE,
    CREATING,
    INACTIVE,
    inactive_timeout,
    schedule_state,
    when,
)
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
from tuneyard.tables import Checkpoint, Deployment, Engine, now

log = logging.getLogger("tuneyard.deploy.engines")
TICK = 0.5


class EngineUnavailable(TuneyardError):
    status = 503
    code = "engine_inactive"


@dataclass
class RunningEngine:
    handle: ModelServerHandle
    client: AsyncModelServerClient
    last_request: float
    adapters: set[str] = field(default_factory=set)
    written: float = 0.0


class AdapterClient:
    """A model-server client bound to one adapter of an engine: the methods the
    forwarding code calls on a deployment's client, with `adapter` added."""

    def __init__(self, client: AsyncModelServerClient, adapter: str):
        self._client, self.adapter = client, adapter

    async def complete(self, prompt: str, **sampling: Any) -> dict[str, Any]:
        return await self._client.complete(prompt, adapter=self.adapter, **sampling)

    async def chat(self, messages: list[dict[str, str]], **sampling: Any) -> dict[str, Any]:
        return await self._client.chat(messages, adapter=self.adapter, **sampling)

    def stream_complete(self, prompt: str, **sampling: Any):
        return self._client.stream_complete(prompt, adapter=self.adapter, **sampling)

    def stream_chat(self, messages: list[dict[str, str]], **sampling: Any):
        return self._client.stream_chat(messages, adapter=self.adapter, **sampling)

    async def classify(self, texts) -> dict[str, Any]:
        return await self._client._post("/classify", {"texts": texts, "adapter": self.adapter})

    async def embed(self, texts) -> dict[str, Any]:
        return await self._client._post("/embed", {"texts": texts, "adapter": self.adapter})


@dataclass
class AdapterRunning:
    """What `DeploymentManager.client_for` returns for an ordinary deployment."""

    client: AdapterClient
    engine: RunningEngine
    labels: list[str] | None = None

    @property
    def last_request(self) -> float:
        return self.engine.last_request

    @last_request.setter
    def last_request(self, value: float) -> None:
        self.engine.last_request = value


def _scheduled(row: Engine) -> bool:
    config = row.resource_management_config or {}
    return config.get("management_type") == "schedule"


class EngineManager:
    def __init__(self, settings: Settings, db, store: ArtifactStore, *,
                 clock: Callable[[], float] = time.time):
        self.settings, self.db, self.store, self.clock = settings, db, store, clock
        self.running: dict[str, RunningEngine] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._starting: set[str] = set()
        self._task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await run_in_threadpool(self._recover)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for engine_id in list(self.running):
            await self.shut(engine_id, status=None)

    def _recover(self) -> None:
        """Engine servers of a previous run are orphans: stop them; the loop
        starts the wanted engines again."""
        with Session(self.db) as session:
            for row in session.scalars(select(Engine).where(Engine.server_pid.is_not(None))):
                signal_group(row.server_pid, signal.SIGKILL)
                row.server_pid, row.server_url = None, None
                if row.status == ACTIVE:
                    row.status = CREATING
            session.commit()

    def _lock(self, engine_id: str) -> asyncio.Lock:
        return self._locks.setdefault(engine_id, asyncio.Lock())

    def _update(self, model, row_id: str, **values) -> None:
        with Session(self.db) as session:
            row = session.get(model, row_id)
            if row is not None:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = now()
                session.commit()

    # -- the engine's server -------------------------------------------------
    def _start_server(self, engine_id: str) -> RunningEngine:
        with Session(self.db) as session:
            row = session.get(Engine, engine_id)
            if row is None:
                raise NotFound(f"engine {engine_id!r} not found")
            base, task = row.base_model, row.task_type
        base_path = resolve_source(_base_source(self.settings, None, base), home=self.settings.home)
        handle = start_model_server(model_dir=base_path, task_type=task, engine=True,
                                    log_path=self.settings.home / "logs" / f"{engine_id}.log")
        try:
            wait_ready(handle, timeout=600)
        except ModelServerError:
            stop_model_server(handle, grace=1)
            raise
        return RunningEngine(handle=handle, client=AsyncModelServerClient(handle.url),
                             last_request=self.clock())

    async def ensure(self, engine_id: str) -> RunningEngine:
        """The engine's running server, started if needed."""
        running = self.running.get(engine_id)
        if running is not None and running.handle.process is not None and \
                running.handle.process.poll() is not None:  # it died: start again
            self.running.pop(engine_id, None)
            running = None
        if running is not None:
            return running
        async with self._lock(engine_id):
            if engine_id in self.running:
                return self.running[engine_id]
            await run_in_threadpool(self._update, Engine, engine_id, status=CREATING,
                                    error=None)
            try:
                running = await run_in_threadpool(self._start_server, engine_id)
            except (PrepareError, ModelServerError, OSError) as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                log.warning("engine %s failed to start: %s", engine_id, exc)
                await run_in_threadpool(self._update, Engine, engine_id, status=INACTIVE,
                                        error=message, wanted=False)
                raise EngineUnavailable(f"engine {engine_id} failed to start: {message}") \
                    from None
            self.running[engine_id] = running
            await run_in_threadpool(self._update, Engine, engine_id, status=ACTIVE,
                                    server_url=running.handle.url,
                                    server_pid=running.handle.pid)
            log.info("engine %s serving at %s", engine_id, running.handle.url)
            return running

    async def shut(self, engine_id: str, *, status: str | None = INACTIVE) -> None:
        """Stop the engine's server (its adapters go with it)."""
        async with self._lock(engine_id):
            running = self.running.pop(engine_id, None)
            if running is not None:
                await running.client.aclose()
                await run_in_threadpool(stop_model_server, running.handle, grace=3)
        values: dict[str, Any] = {"server_url": None, "server_pid": None}
        if status is not None:
            values["status"] = status
        await run_in_threadpool(self._update, Engine, engine_id, **values)
        await run_in_threadpool(self._unloaded, engine_id)

    def _unloaded(self, engine_id: str) -> None:
        with Session(self.db) as session:
            for dp in session.scalars(select(Deployment).where(Deployment.engine_id == engine_id,
                                                               Deployment.loaded.is_(True))):
                dp.loaded, dp.server_url = False, None
            session.commit()

    # -- adapters --------------------------------------------------------------
    def _fetch(self, dp_id: str) -> str:
        """The deployment's checkpoint on local disk (downloaded once)."""
        with Session(self.db) as session:
            row = session.get(Deployment, dp_id)
            if row is None:
                raise NotFound(f"deployment {dp_id} not found")
            checkpoint = session.scalar(select(Checkpoint).where(
                Checkpoint.job_id == row.training_job_id, Checkpoint.number == row.checkpoint))
            if checkpoint is None or checkpoint.pruned:
                raise PrepareError(f"checkpoint {row.checkpoint} of {row.training_job_id} "
                                   "is gone")
            prefix = checkpoint.storage_prefix
        target = self.settings.home / "deployments" / dp_id / "model"
        try:
            if not find_manifest(target):
                download_checkpoint(store=self.store, prefix=prefix, target=target,
                                    model_only=True)
        except CheckpointError as exc:
            raise PrepareError(str(exc)) from exc
        return str(target)

    async def attach(self, engine_id: str, dp_id: str) -> RunningEngine:
        """Load the deployment's adapter on the engine (starting the engine)."""
        running = await self.ensure(engine_id)
        if dp_id in running.adapters:
            return running
        async with self._lock(f"{engine_id}/{dp_id}"):
            if dp_id in running.adapters:
                return running
            await run_in_threadpool(self._update, Deployment, dp_id,
                                    status=DeploymentStatus.DEPLOYING, error=None)
            try:
                path = await run_in_threadpool(self._fetch, dp_id)
                await running.client._post("/adapters", {"name": dp_id, "model_dir": path})
            except (PrepareError, ModelServerError, OSError) as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                log.warning("deployment %s failed to load on %s: %s", dp_id, engine_id, exc)
                await run_in_threadpool(self._update, Deployment, dp_id,
                                        status=DeploymentStatus.FAILED, error=message)
                raise InvalidInput(f"deployment {dp_id} failed to load: {message}") from None
            running.adapters.add(dp_id)
            await run_in_threadpool(self._update, Deployment, dp_id,
                                    status=DeploymentStatus.DEPLOYED, loaded=True,
                                    server_url=running.handle.url, error=None)
        return running

    async def detach(self, engine_id: str, dp_id: str) -> None:
        running = self.running.get(engine_id)
        if running is None or dp_id not in running.adapters:
            return
        running.adapters.discard(dp_id)
        try:
            response = await running.client._http.delete(f"/adapters/{dp_id}")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("engine %s: unloading %s failed: %s", engine_id, dp_id, exc)

    # -- requests --------------------------------------------------------------
    def availability(self, engine: Engine) -> str | None:
        """Why a request to this engine cannot be served now (None: it can)."""
        inside, next_open = schedule_state(engine.resource_management_config, self.clock())
        if not inside:
            later = f"; it will be active at {when(next_open)}" if next_open else ""
            return f"engine {engine.id} is inactive outside its schedule{later}"
        if not engine.wanted:
            why = f" ({engine.error})" if engine.error else ""
            return (f"engine {engine.id} is deactivated{why}; reactivate it with "
                    f"POST /v1/engines/{engine.id}/reactivate")
        return None

    async def client_for(self, deployment: Deployment) -> AdapterRunning:
        if deployment.status in DEPLOYMENT_STOPPED:
            why = f": {deployment.error}" if deployment.error else ""
            raise InvalidInput(f"deployment {deployment.id} is {deployment.status}{why}; "
                               "deploy it on the engine again")
        with Session(self.db) as session:
            engine = session.get(Engine, deployment.engine_id)
            if engine is None:
                raise NotFound(f"the engine of deployment {deployment.id} is gone")
            reason = self.availability(engine)
        if reason:
            raise EngineUnavailable(reason)
        running = await self.attach(deployment.engine_id, deployment.id)
        running.last_request = self.clock()
        return AdapterRunning(client=AdapterClient(running.client, deployment.id),
                              engine=running)

    # -- the loop ----------------------------------------------------------------
    def _snapshot(self) -> dict[str, dict[str, Any]]:
        with Session(self.db) as session:
            engines = {e.id: {"row": e, "adapters": set()} for e in session.scalars(select(Engine))}
            for dp in session.scalars(select(Deployment).where(
                    Deployment.engine_id.is_not(None), Deployment.status.in_(DEPLOYMENT_LIVE))):
                if dp.engine_id in engines:
                    engines[dp.engine_id]["adapters"].add(dp.id)
            session.expunge_all()
        return engines

    async def _tick(self) -> None:
        engines = await run_in_threadpool(self._snapshot)
        at = self.clock()
        for engine_id in list(self.running):
            if engine_id not in engines:  # deleted
                await self.shut(engine_id, status=None)
        for engine_id, info in engines.items():
            row: Engine = info["row"]
            inside, _ = schedule_state(row.resource_management_config, at)
            running = self.running.get(engine_id)
            if running is not None:
                timeout = inactive_timeout(row.resource_management_config)
                if not row.wanted or not inside or \
                        (timeout and at - running.last_request > timeout):
                    log.info("engine %s: stopping (wanted=%s, in window=%s)", engine_id,
                             row.wanted, inside)
                    await self.shut(engine_id)
                    continue
                for dp_id in running.adapters - info["adapters"]:
                    await self.detach(engine_id, dp_id)
                for dp_id in info["adapters"] - running.adapters:
                    self._background(engine_id, dp_id)
                if running.written != running.last_request:
                    running.written = running.last_request
                    await run_in_threadpool(self._update, Engine, engine_id,
                                            last_request_at=running.last_request)
            elif row.wanted and inside and not info["adapters"]:
                # Nothing to serve yet: no server (and no base in memory) until
                # the first deployment arrives.
                if row.status != ACTIVE:
                    await run_in_threadpool(self._update, Engine, engine_id, status=ACTIVE)
            elif row.wanted and inside and (row.status != INACTIVE or _scheduled(row)):
                self._background(engine_id, None)  # new, reactivated, or its window opened
            elif not inside and row.status != INACTIVE:
                await run_in_threadpool(self._update, Engine, engine_id, status=INACTIVE)

    def _background(self, engine_id: str, dp_id: str | None) -> None:
        """Start the engine (dp_id None) or load an adapter, once at a time."""
        key = f"{engine_id}/{dp_id}"
        if key in self._starting:
            return
        self._starting.add(key)

        async def go() -> None:
            try:
                if dp_id is None:
                    await self.ensure(engine_id)
                else:
                    await self.attach(engine_id, dp_id)
            except TuneyardError:
                pass  # recorded on the engine or deployment
            except Exception:  # noqa: BLE001 - the loop goes on
                log.exception("engine %s: loading %s failed", engine_id, dp_id)
            finally:
                self._starting.discard(key)

        asyncio.create_task(go())

    async def _loop(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep managing; the DB may be briefly away
                log.exception("engine manager tick failed")
            await asyncio.sleep(TICK)
