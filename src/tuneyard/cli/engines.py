"""`tuneyard engines …`: inference engines, one base model serving many LoRA
checkpoints from one model server (Emissary v2 `/v1/engines`)."""

from __future__ import annotations

import json

import typer

from ._output import emit, fail, out, status_style, table, when
from ._session import JsonOption, ProjectOption, QuietOption, YesOption, client, confirm, project_id

engines_app = typer.Typer(no_args_is_help=True,
                          help="Serve many LoRA checkpoints of one base model together.")
EngineArg = typer.Argument(..., help="Engine id.")


def _config(inactive_timeout: int | None, schedule: str | None) -> dict | None:
    if inactive_timeout is not None and schedule:
        fail("give --inactive-timeout or --schedule, not both")
    if inactive_timeout is not None:
        return {"management_type": "inactive_timeout",
                "management_config": {"inactive_duration": inactive_timeout}}
    if not schedule:
        return None
    try:
        config = json.loads(schedule)
    except ValueError:
        fail('--schedule must be JSON: {"timezone": "Europe/Paris", "start_time": "09:00", '
             '"end_time": "18:00", "days": ["monday", ...]}')
    return {"management_type": "schedule", "management_config": config}


@engines_app.command("create")
def engines_create(
    base_model: str = typer.Option(..., "--base-model", "-m", help="The engine's base model."),
    name: str = typer.Option(None, "--name", "-n", help="Engine name."),
    task_type: str = typer.Option(None, "--task-type", help="Default: the model's task."),
    inactive_timeout: int = typer.Option(None, "--inactive-timeout",
                                         help="Unload after this many idle seconds."),
    schedule: str = typer.Option(None, "--schedule",
                                 help='Weekly window as JSON: {"timezone", "start_time", '
                                      '"end_time", "days"}.'),
    as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Create an inference engine."""
    engine = client().engines.create(base_model, name=name, task_type=task_type,
                                     resource_management_config=_config(inactive_timeout,
                                                                        schedule))
    if quiet:
        print(engine.id)
    else:
        emit(engine, as_json=as_json, render=lambda: out.print(
            f"engine {engine.id} ({engine.name}) on {engine.base_model}: "
            f"{status_style(engine.status)}"))


@engines_app.command("list")
def engines_list(base_model: str = typer.Option(None, "--base-model"),
                 task_type: str = typer.Option(None, "--task-type"),
                 as_json: bool = JsonOption) -> None:
    """List your inference engines."""
    engines = client().engines.list(base_model=base_model, task_type=task_type)
    emit(engines, as_json=as_json, render=lambda: out.print(table(
        "engine", "name", "status", "base model", "deployments", "created",
        rows=[(e.id, e.name, status_style(e.status), e.base_model, e.deployment_counts,
               when(e.created_at)) for e in engines])))


@engines_app.command("show")
def engines_show(engine: str = EngineArg, as_json: bool = JsonOption) -> None:
    """Show an engine and its deployments."""
    e = client().engines.get(engine)

    def render() -> None:
        rows = [("id", e.id), ("name", e.name), ("status", status_style(e.status)),
                ("base model", e.base_model), ("task", e.task_type),
                ("deployments", e.deployment_counts), ("created", when(e.created_at)),
                ("next active", when(e.next_active_at)),
                ("config", e.resource_management_config and
                 json.dumps(e.resource_management_config)),
                ("error", e.error and f"[red]{e.error}[/red]")]
        out.print(table("field", "value", rows=[r for r in rows if r[1] not in (None, "")]))
        if e.deployments:
            out.print(table("deployment", "name", "status",
                            rows=[(d.id, d.name, status_style(d.status))
                                  for d in e.deployments]))

    emit(e, as_json=as_json, render=render)


@engines_app.command("delete")
def engines_delete(engine: str = EngineArg, yes: bool = YesOption) -> None:
    """Delete an engine and the deployments on it."""
    confirm(f"Delete engine {engine} and its deployments?", yes)
    client().engines.delete(engine)
    out.print(f"deleted engine {engine}")


@engines_app.command("deploy")
def engines_deploy(
    engine: str = EngineArg,
    job: str = typer.Option(..., "--job", "-j", help="Training job id (a LoRA job)."),
    checkpoint: int = typer.Option(..., "--checkpoint", "-c", help="Checkpoint number."),
    name: str = typer.Option(None, "--name", "-n", help="Deployment name (used as `model`)."),
    project: str = ProjectOption, as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Deploy a LoRA checkpoint on an engine."""
    d = client().engines.deploy(engine, project_id=project_id(project), training_id=job,
                                checkpoint=checkpoint, name=name)
    if quiet:
        print(d.id)
    else:
        emit(d, as_json=as_json, render=lambda: out.print(
            f"deployment {d.id} ({d.name}) on engine {engine}: {status_style(d.status)}"))


@engines_app.command("undeploy")
def engines_undeploy(engine: str = EngineArg,
                     deployment: str = typer.Argument(..., help="Deployment name.")) -> None:
    """Take a deployment off an engine (the others keep serving)."""
    client().engines.undeploy(engine, deployment)
    out.print(f"undeployed {deployment} from engine {engine}")


@engines_app.command("activate")
def engines_activate(engine: str = EngineArg) -> None:
    """Reactivate an inactive engine."""
    client().engines.reactivate(engine)
    out.print(f"engine {engine} is starting")


@engines_app.command("deactivate")
def engines_deactivate(engine: str = EngineArg) -> None:
    """Deactivate an engine: its model server stops until it is activated again."""
    client().engines.deactivate(engine)
    out.print(f"engine {engine} deactivated")
