"""The app factory: wires settings, database, store and routers together."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from tuneyard import __version__
from tuneyard.api import observability
from tuneyard.api.errors import install_error_handlers
from tuneyard.api.guard import RequestGuard
from tuneyard.api.openai_errors import OpenAIErrorMiddleware
from tuneyard.api.routes import (
    datasets,
    deployments,
    engines,
    files,
    health,
    inference,
    jobs,
    models,
    openai_ft,
    projects,
    test_functions,
)
from tuneyard.config import Settings, get_settings
from tuneyard.db import engine_for, session_scope, upgrade
from tuneyard.services.keys import bootstrap_keys
from tuneyard.storage import ArtifactStore, open_store

log = logging.getLogger("tuneyard")


def prepare(settings: Settings, engine: Engine) -> str | None:
    """Migrate the database and make sure an admin key exists.

    Returns a newly created admin key (to be shown once), or None.
    """
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    with session_scope(engine) as session:
        return bootstrap_keys(session=session, home=settings.home,
                              bootstrap_key=settings.bootstrap_api_key)


def create_app(settings: Settings | None = None, *, store: ArtifactStore | None = None,
               engine: Engine | None = None, migrate: bool = True) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or engine_for(settings.resolved_database_url)
    store = store or open_store(settings.resolved_storage_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if migrate:
            new_key = prepare(settings, engine)
            if new_key:
                print(f"Created admin API key (shown once, also in {settings.home}/admin.key):"
                      f"\n  {new_key}", flush=True)
        from tuneyard.deploy.manager import DeploymentManager

        app.state.deployments = DeploymentManager(settings, engine, store)
        await app.state.deployments.start()
        from tuneyard.deploy.engines import EngineManager

        app.state.engines = EngineManager(settings, engine, store)
        await app.state.engines.start()
        worker = None
        if settings.embedded_worker:
            from tuneyard.worker.loop import start_embedded

            worker = start_embedded(settings)
        try:
            yield
        finally:
            await app.state.engines.stop()
            await app.state.deployments.stop()
            if worker is not None:
                thread, stop = worker
                stop.set()
                thread.join(timeout=30)

    app = FastAPI(
        title="tuneyard", version=__version__, lifespan=lifespan,
        description="Self-hosted fine-tuning platform speaking the Emissary platform API.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.store = store
    app.add_middleware(RequestGuard)  # inside the request-id middleware: its answers get ids
    install_error_handlers(app)
    observability.install(app)
    for module in (health, models, projects, datasets, jobs, deployments, inference,
                   test_functions, files, engines):
        app.include_router(module.router)
    app.include_router(openai_ft.router)  # /openai/v1: OpenAI's shapes and error bodies
    app.add_middleware(OpenAIErrorMiddleware)
    mount_dashboard(app)
    return app


def mount_dashboard(app: FastAPI) -> None:
    """The web dashboard at `/` (tuneyard.web), its assets at `/static`."""
    from fastapi.staticfiles import StaticFiles

    from tuneyard.web import actions, pages
    from tuneyard.web.common import STATIC

    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
