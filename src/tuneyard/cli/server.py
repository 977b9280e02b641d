"""Commands that run or administer a server on this machine: `serve`, `worker`,
`keys`, `db`. They work on the database directly (no HTTP), and import the
server's modules only when run, so `tuneyard --help` stays fast."""

from __future__ import annotations

import typer

from ._output import err, fail, out, print_json, table

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys (works on the DB directly).")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    worker: bool = typer.Option(True, help="Run an embedded training worker."),
) -> None:
    """Run migrations and serve the API (with an embedded worker)."""
    import uvicorn

    from tuneyard import logs
    from tuneyard.api.app import create_app
    from tuneyard.config import get_settings

    try:
        json_logs = logs.configure()
    except ValueError as exc:  # an unknown TUNEYARD_LOG_FORMAT
        fail(str(exc))
    settings = get_settings()
    settings.embedded_worker = settings.embedded_worker and worker
    if "public_url" not in settings.model_fields_set:
        # Download URLs must point at where this server really listens.
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings.public_url = f"http://{shown}:{port}"
    try:
        app = create_app(settings)
    except (NotImplementedError, ValueError) as exc:  # e.g. an unsupported storage URL
        fail(str(exc))
    from tuneyard.processes import warm_forkserver

    warm_forkserver()  # deployments and jobs fork from it: load torch before they ask
    # In JSON mode uvicorn's loggers go through the JSON handler set up above.
    extra = {"log_config": None} if json_logs else {}
    uvicorn.run(app, host=host, port=port, log_level="info", **extra)


def worker(
    metrics_port: int = typer.Option(
        None, "--metrics-port", min=1, max=65535,
        help="Serve this worker's Prometheus metrics (claims, its jobs' checkpoint "
             "publish and evaluation durations) on this port at /metrics."),
) -> None:
    """Run a standalone training worker against the configured database and store."""
    from tuneyard import logs
    from tuneyard.config import get_settings
    from tuneyard.storage import open_store
    from tuneyard.worker.loop import run_worker

    settings = get_settings()
    try:
        logs.json_logs()  # an unknown TUNEYARD_LOG_FORMAT is refused here
        open_store(settings.resolved_storage_url)  # no bucket, refused credentials: stop now
    except ValueError as exc:
        fail(str(exc))
    run_worker(settings, metrics_port=metrics_port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every database migration."""
    from tuneyard.config import get_settings
    from tuneyard.db import upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    out.print("database is up to date")


def _db_session():
    from tuneyard.config import get_settings
    from tuneyard.db import engine_for, session_scope, upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    return session_scope(engine_for(settings.resolved_database_url))


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="A label for the key (and its new user)."),
    user: str = typer.Option(None, "--user", help="Give the key to this existing user id."),
    admin: bool = typer.Option(False, "--admin", help="Make the new user an admin."),
) -> None:
    """Create an API key and print it (shown only once)."""
    from tuneyard.services.keys import create_key

    with _db_session() as session:
        try:
            key, row = create_key(session=session, name=name, user_id=user, is_admin=admin)
        except LookupError as exc:
            fail(str(exc))
        user_id = row.user_id
    print(key)
    err.print(f"key for {user_id} created; it is not shown again")


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List API keys (never the keys themselves)."""
    from tuneyard.services.keys import list_keys

    with _db_session() as session:
        rows = [{"id": k.id, "name": k.name, "user": k.user_id, "prefix": k.prefix,
                 "created_at": k.created_at, "revoked": k.revoked_at is not None}
                for k in list_keys(session=session)]
    if as_json:
        print_json(rows)
        return
    out.print(table("id", "name", "user", "prefix", "revoked",
                    rows=[(r["id"], r["name"], r["user"], r["prefix"] + "…", r["revoked"])
                          for r in rows]))


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (see `keys list`).")) -> None:
    """Revoke an API key."""
    from tuneyard.services.keys import revoke_key

    with _db_session() as session:
        try:
            revoke_key(session=session, key_id=key_id)
        except LookupError as exc:
            fail(str(exc))
    out.print(f"revoked {key_id}")
