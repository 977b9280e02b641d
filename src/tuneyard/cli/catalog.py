"""`tuneyard models …` and `tuneyard test-functions …`: what a job can be built from."""

from __future__ import annotations

import typer

from ._output import emit, out, table
from ._session import JsonOption, client

models_app = typer.Typer(no_args_is_help=True, help="Base models you can fine-tune.")
test_functions_app = typer.Typer(no_args_is_help=True,
                                 help="Test functions that score checkpoints.")


@models_app.command("list")
def models_list(as_json: bool = JsonOption) -> None:
    """List the base models."""
    models = client().models.list()
    emit(models, as_json=as_json, render=lambda: out.print(table(
        "name", "type", "available", "serverless", "description",
        rows=[(m.name, m.type, _yes(m.available), _yes(m.support_serverless),
               _short(m.description))
              for m in models])))


@models_app.command("show")
def models_show(name: str = typer.Argument(..., help="The model's name."),
                as_json: bool = JsonOption) -> None:
    """Show a base model and its parameter template (the job parameters it takes)."""
    model = client().models.get(name)

    def render() -> None:
        out.print(f"[bold]{model.name}[/bold]  type {model.type}  "
                  f"available {_yes(model.available)}  serverless {_yes(model.support_serverless)}")
        if model.description:
            out.print(model.description)
        out.print(table("parameter", "default", title="parameter template",
                        rows=sorted(model.parameter_template.items())))

    emit(model, as_json=as_json, render=render)


@test_functions_app.command("list")
def test_functions_list(as_json: bool = JsonOption) -> None:
    """List the test functions a job can use (`jobs create --test-function NAME`)."""
    functions = client().test_functions.list()
    emit(functions, as_json=as_json, render=lambda: out.print(table(
        "name", "source", "dependencies", "summary",
        rows=[(f.name, {True: "builtin", False: "admin"}.get(f.builtin, ""),
               ", ".join(f.dependencies), _first_doc_line(f.content)) for f in functions])))


@test_functions_app.command("show")
def test_functions_show(name: str = typer.Argument(..., help="The function's name."),
                        as_json: bool = JsonOption) -> None:
    """Show a test function's source."""
    from rich.syntax import Syntax

    function = client().test_functions.get(name)

    def render() -> None:
        out.print(f"[bold]{function.name}[/bold]  dependencies: "
                  f"{', '.join(function.dependencies) or 'none'}")
        out.print(Syntax(function.content, "python"))

    emit(function, as_json=as_json, render=render)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _first_doc_line(source: str) -> str:
    """The docstring's first line, if the function has one near its top."""
    for line in source.splitlines()[:8]:
        stripped = line.strip().strip('"').strip("'").strip()
        if stripped and not stripped.startswith(("def ", "import ", "from ", "#", "@")):
            return stripped[:80]
    return ""
