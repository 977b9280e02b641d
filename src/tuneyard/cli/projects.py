"""`tuneyard projects …` and `tuneyard datasets …`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._output import emit, note, out, size, status_style, table, when
from ._progress import transfer_progress
from ._session import (
    JsonOption,
    ProjectOption,
    QuietOption,
    YesOption,
    client,
    confirm,
    project_id,
)

projects_app = typer.Typer(no_args_is_help=True, help="Projects hold datasets, jobs, deployments.")
datasets_app = typer.Typer(no_args_is_help=True, help="Upload and manage datasets.")


@projects_app.command("create")
def projects_create(
    name: str = typer.Argument(None, help="A name (the server picks one if omitted)."),
    use: bool = typer.Option(False, "--use", help="Make it the default project."),
    as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Create a project."""
    project = client().projects.create(name)
    if use:
        _use(project.id)
    if quiet:
        print(project.id)
        return
    emit(project, as_json=as_json,
         render=lambda: out.print(f"created project {project.id} ({project.name})"))


@projects_app.command("list")
def projects_list(as_json: bool = JsonOption) -> None:
    """List your projects."""
    projects = client().projects.list()
    emit(projects, as_json=as_json, render=lambda: out.print(table(
        "id", "name", "created", rows=[(p.id, p.name, when(p.created_at)) for p in projects])))


@projects_app.command("show")
def projects_show(project: str = typer.Argument(None, help="Project id (default: current)."),
                  as_json: bool = JsonOption) -> None:
    """Show a project with its datasets, training jobs and deployments."""
    detail = client().projects.get(project_id(project))

    def render() -> None:
        out.print(f"[bold]{detail.name}[/bold] ({detail.id}), created {when(detail.created_at)}")
        out.print(_datasets_table(detail.datasets))
        out.print(table("job", "name", "base model", "status", "progress", title="training jobs",
                        rows=[(j.id, j.name, j.base_model, status_style(j.status),
                               f"{j.progress}%") for j in detail.training_jobs]))
        out.print(table("deployment", "name", "status", "created", title="deployments",
                        rows=[(d.id, d.name, status_style(d.status), when(d.created_at))
                              for d in detail.deployments]))

    emit(detail, as_json=as_json, render=render)


@projects_app.command("delete")
def projects_delete(project: str = typer.Argument(..., help="Project id."),
                    yes: bool = YesOption) -> None:
    """Delete a project with everything in it."""
    confirm(f"Delete project {project} with all its datasets, jobs and deployments?", yes)
    client().projects.delete(project)
    out.print(f"deleted project {project}")


@projects_app.command("use")
def projects_use(project: str = typer.Argument(..., help="Project id.")) -> None:
    """Make a project the default for commands that take --project."""
    detail = client().projects.get(project)  # refuse a project that does not exist
    _use(detail.id)
    out.print(f"now using project {detail.id} ({detail.name})")


def _use(project: str) -> None:
    from tuneyard.client.config import read_config, write_config

    saved = read_config(os.environ)
    saved["project"] = project
    write_config(saved, os.environ)


def _datasets_table(datasets) -> object:
    return table("dataset", "name", "format", "shape", "records", "size", "created",
                 title="datasets",
                 rows=[(d.id, d.name, d.file_format, d.shape, d.num_records, size(d.size_bytes),
                        when(d.created_at)) for d in datasets])


@datasets_app.command("upload")
def datasets_upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="A .jsonl, .json, .csv or .parquet file."),
    name: str = typer.Option(None, "--name", "-n", help="Dataset name (default: the file's)."),
    project: str = ProjectOption, as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Upload a dataset file (validated by the server; a bad line is reported by number)."""
    pid = project_id(project)
    api = client()
    with transfer_progress(f"uploading {path.name}") as progress:
        dataset = api.datasets.upload(pid, path, name=name, progress=progress)
    if quiet:
        print(dataset.id)
        return
    emit(dataset, as_json=as_json, render=lambda: out.print(
        f"uploaded {dataset.id}: {dataset.num_records} {dataset.shape} records "
        f"({dataset.file_format}, {size(dataset.size_bytes)})"))


@datasets_app.command("list")
def datasets_list(project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """List a project's datasets."""
    datasets = client().datasets.list(project_id(project))
    emit(datasets, as_json=as_json, render=lambda: out.print(_datasets_table(datasets)))


@datasets_app.command("show")
def datasets_show(dataset: str = typer.Argument(..., help="Dataset id."),
                  project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """Show a dataset (with a signed download URL)."""
    detail = client().datasets.get(project_id(project), dataset)

    def render() -> None:
        rows = [("id", detail.id), ("name", detail.name), ("format", detail.file_format),
                ("shape", detail.shape), ("records", detail.num_records),
                ("labels", ", ".join(detail.labels or []) or None),
                ("size", size(detail.size_bytes)), ("sha256", detail.sha256),
                ("uploaded by", detail.upload_by), ("created", when(detail.created_at)),
                ("download", detail.dataset_download_url)]
        out.print(table("field", "value", rows=[r for r in rows if r[1] not in (None, "")]))

    emit(detail, as_json=as_json, render=render)


@datasets_app.command("download")
def datasets_download(
    dataset: str = typer.Argument(..., help="Dataset id."),
    output: str = typer.Option(None, "--output", "-o",
                                help="File or directory (default: the dataset's name, here)."),
    project: str = ProjectOption,
) -> None:
    """Download a dataset file (resumes an interrupted download, checks sha256)."""
    pid = project_id(project)
    with transfer_progress(f"downloading {dataset}") as progress:
        result = client().datasets.download(pid, dataset, output, progress=progress)
    checked = "sha256 verified" if result.verified else "no checksum to verify"
    note(f"{checked}" + (f", resumed at {size(result.resumed_from)}"
                         if result.resumed_from else ""))
    out.print(str(result.path))


@datasets_app.command("delete")
def datasets_delete(dataset: str = typer.Argument(..., help="Dataset id."),
                    project: str = ProjectOption, yes: bool = YesOption) -> None:
    """Delete a dataset."""
    pid = project_id(project)
    confirm(f"Delete dataset {dataset}?", yes)
    client().datasets.delete(pid, dataset)
    out.print(f"deleted dataset {dataset}")
