"""`tuneyard deployments …` and the inference commands `complete`, `chat`,
`classify`, `embed` (the OpenAI-style routes: a deployment's name or id is
enough, no project needed)."""

from __future__ import annotations

import math
import sys
from enum import StrEnum

import typer

from tuneyard.status import DeploymentStatus

from ._checkpoints import best_checkpoint
from ._output import emit, err, fail, out, print_json, status_style, table, when
from ._session import (
    JsonOption,
    ProjectOption,
    QuietOption,
    YesOption,
    client,
    confirm,
    project_id,
)

deployments_app = typer.Typer(no_args_is_help=True, help="Serve checkpoints for inference.")

DeploymentArg = typer.Argument(..., help="Deployment name or id.")
MaxTokens = typer.Option(None, "--max-tokens", help="Most new tokens to generate.")
Temperature = typer.Option(None, "--temperature", help="Sampling temperature (0 = greedy).")
TopP = typer.Option(None, "--top-p", help="Nucleus sampling probability mass.")
TopK = typer.Option(None, "--top-k", help="Sample among the k likeliest tokens.")


class ServerType(StrEnum):
    serverless = "serverless"
    on_demand = "on-demand"


@deployments_app.command("create")
def deployments_create(
    job: str = typer.Option(..., "--job", "-j",
                            help="Training job id (or a base model's name with --checkpoint 0)."),
    checkpoint: str = typer.Option("best", "--checkpoint", "-c",
                                   help="Checkpoint number, `best` or `latest`."),
    name: str = typer.Option(None, "--name", "-n", help="Deployment name (used as `model`)."),
    description: str = typer.Option(None, "--description"),
    server_type: ServerType = typer.Option(None, "--server-type",
                                           help="on-demand loads now; serverless on first use."),
    inactive_timeout: int = typer.Option(None, "--inactive-timeout",
                                         help="Unload after this many idle seconds."),
    wait: bool = typer.Option(False, "--wait", help="Wait until it is Deployed (or failed)."),
    engine: str = typer.Option(None, "--engine",
                               help="Serve it on this inference engine (a LoRA checkpoint "
                                    "of the engine's base model)."),
    project: str = ProjectOption, as_json: bool = JsonOption, quiet: bool = QuietOption,
) -> None:
    """Deploy a checkpoint."""
    if not checkpoint.isdigit() and checkpoint not in ("best", "latest"):
        fail(f"--checkpoint must be a number, `best` or `latest`, got {checkpoint!r}")
    pid = project_id(project)
    api = client()
    number = _checkpoint_number(api, pid, job, checkpoint)
    if engine:
        if server_type or inactive_timeout is not None:
            fail("--server-type and --inactive-timeout are the engine's to set, not "
                 "a deployment's on it")
        deployment = api.engines.deploy(engine, project_id=pid, training_id=job,
                                        checkpoint=number, name=name)
    else:
        deployment = api.deployments.create(
            pid, training_job_id=job, checkpoint=number, name=name, description=description,
            server_type=server_type.value if server_type else None,
            inactive_timeout=inactive_timeout)
    if wait:
        deployment = api.deployments.wait(pid, deployment.id)
    if quiet:
        print(deployment.id)
    else:
        emit(deployment, as_json=as_json, render=lambda: out.print(
            f"deployment {deployment.id} ({deployment.name}) of {job} checkpoint {number}: "
            f"{status_style(deployment.status)}"))
    if wait and deployment.status != DeploymentStatus.DEPLOYED:
        fail(f"deployment {deployment.id} is {deployment.status}"
             + (f": {deployment.error}" if deployment.error else ""))


def _checkpoint_number(api, pid: str, job: str, wanted: str) -> int:
    if wanted.isdigit():
        return int(wanted)
    checkpoints = api.jobs.checkpoints(pid, job)
    if not checkpoints:
        fail(f"job {job} has no checkpoints yet")
    if wanted == "best":
        best = best_checkpoint(api.jobs.get(pid, job), checkpoints)
        if best is not None:
            return best
    return checkpoints[-1].checkpoint


@deployments_app.command("list")
def deployments_list(project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """List a project's deployments."""
    deployments = client().deployments.list(project_id(project))
    emit(deployments, as_json=as_json, render=lambda: out.print(table(
        "deployment", "name", "status", "created",
        rows=[(d.id, d.name, status_style(d.status), when(d.created_at)) for d in deployments])))


@deployments_app.command("show")
def deployments_show(deployment: str = typer.Argument(..., help="Deployment id."),
                     project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """Show a deployment."""
    d = client().deployments.get(project_id(project), deployment)
    rows = [("id", d.id), ("name", d.name), ("status", status_style(d.status)),
            ("base model", d.base_model), ("job", d.training_id), ("checkpoint", d.checkpoint),
            ("description", d.description), ("created", when(d.created_at)),
            ("updated", when(d.updated_at)), ("error", d.error and f"[red]{d.error}[/red]")]
    emit(d, as_json=as_json, render=lambda: out.print(
        table("field", "value", rows=[r for r in rows if r[1] not in (None, "")])))


@deployments_app.command("cancel")
def deployments_cancel(deployment: str = typer.Argument(..., help="Deployment id."),
                       project: str = ProjectOption) -> None:
    """Stop serving a deployment (the model is unloaded)."""
    client().deployments.cancel(project_id(project), deployment)
    out.print(f"cancelled deployment {deployment}")


@deployments_app.command("reactivate")
def deployments_reactivate(deployment: str = typer.Argument(..., help="Deployment id."),
                           project: str = ProjectOption) -> None:
    """Load a deactivated deployment again."""
    client().deployments.reactivate(project_id(project), deployment)
    out.print(f"reactivating deployment {deployment}")


@deployments_app.command("delete")
def deployments_delete(deployment: str = typer.Argument(..., help="Deployment id."),
                       project: str = ProjectOption, yes: bool = YesOption) -> None:
    """Delete a deployment."""
    pid = project_id(project)
    confirm(f"Delete deployment {deployment}?", yes)
    client().deployments.delete(pid, deployment)
    out.print(f"deleted deployment {deployment}")


# --- inference ---------------------------------------------------------------------------


def complete(model: str = DeploymentArg,
             prompt: str = typer.Argument(..., help="The text to continue."),
             max_tokens: int = MaxTokens, temperature: float = Temperature,
             top_p: float = TopP, top_k: int = TopK, as_json: bool = JsonOption) -> None:
    """Continue a prompt with a deployed text-generation model."""
    result = client().inference.completions(model, prompt, max_tokens=max_tokens,
                                            temperature=temperature, top_p=top_p, top_k=top_k)
    emit(result, as_json=as_json, render=lambda: print(result.text))


def chat(model: str = DeploymentArg,
         message: str = typer.Option(None, "--message", "-m",
                                     help="Send this one message, print the reply, exit."),
         system: str = typer.Option(None, "--system", help="A system message to start with."),
         max_tokens: int = MaxTokens, temperature: float = Temperature,
         top_p: float = TopP, top_k: int = TopK) -> None:
    """Chat with a deployed model; replies stream in as they are generated.

    Without --message, an interactive session: an empty line or Ctrl-D ends it.
    """
    api = client()
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    options = dict(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k)

    def reply(text: str) -> None:
        history.append({"role": "user", "content": text})
        pieces = []
        for delta in api.inference.chat_stream(model, history, **options):
            pieces.append(delta)
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(pieces)})

    if message is not None:
        reply(message)
        return
    err.print(f"chatting with {model}; an empty line or Ctrl-D ends the session")
    while True:
        try:
            text = input("you> ")
        except EOFError:
            break
        if not text.strip():
            break
        reply(text)


def classify(model: str = DeploymentArg, text: str = typer.Argument(..., help="Text to label."),
             logits: bool = typer.Option(False, "--logits",
                                         help="Show raw logits instead of probabilities."),
             as_json: bool = JsonOption) -> None:
    """Label a text with a deployed classification (or regression) model."""
    result = client().inference.classification(model, text,
                                               data_format="logits" if logits else "probs")

    def render() -> None:
        scores = sorted(result.scores.items(), key=lambda kv: -kv[1])
        out.print(f"[bold]{result.label}[/bold]")
        out.print(table("label", "logit" if logits else "probability",
                        rows=[(k, f"{v:.4f}") for k, v in scores]))

    emit(result, as_json=as_json, render=render)


def embed(model: str = DeploymentArg,
          texts: list[str] = typer.Argument(..., help="One or more texts."),
          as_json: bool = JsonOption) -> None:
    """Embed texts with a deployed embedding model; two texts also get their cosine."""
    result = client().inference.embeddings(model, texts if len(texts) > 1 else texts[0])
    if as_json:
        print_json(result)
        return
    vectors = result.vectors
    out.print(table("text", "dims", "vector", rows=[
        (t[:40], len(v), "[" + ", ".join(f"{x:.3f}" for x in v[:4]) + ", …]")
        for t, v in zip(texts, vectors, strict=False)]))
    if len(vectors) == 2:
        out.print(f"cosine similarity: {_cosine(*vectors):.4f}")


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
