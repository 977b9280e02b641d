"""`tuneyard demo` (what `make demo` runs): the whole product in a few minutes.

Starts a server with its own home (or reuses the one already answering on the
port), uploads the example dataset shipped in `tuneyard/examples/`, fine-tunes
`tuneyard-tiny-lm` on it while the checkpoints fill in with test results next
to the baseline, deploys the best checkpoint, asks it for a few completions,
and prints where everything is and what to try next. A server it started is
stopped at the end unless `--keep` is given; one it found running is left alone.

Everything goes through the same HTTP client and views as the other commands
(`jobs watch`'s live view, the checkpoint table), so the demo shows the CLI a
user will type next.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tuneyard.processes import spawn, stop_group
from tuneyard.status import DeploymentStatus, JobStatus

from ._output import err, fail, note, out, status_style, table

if TYPE_CHECKING:
    from tuneyard.client import Checkpoint, TrainingJob, TuneyardClient

BASE_MODEL = "tuneyard-tiny-lm"
TRAIN_FILE, TEST_FILE = "upper-reverse.train.jsonl", "upper-reverse.test.jsonl"
DEPLOYMENT_NAME = "tuneyard-demo"
EPOCHS = 3
# How long each wait may take before the demo gives up (on a loaded machine
# everything is slower; these are far above what an idle 2-core machine needs).
SERVER_START_S = 120.0
DEPLOY_S = 300.0
STOP_S = 60.0
STEPS = 6


@dataclass
class Server:
    url: str
    key: str
    key_file: Path | None
    process: subprocess.Popen | None  # None: it was already running, not ours to stop
    log: Path | None


# --cluster: the job parameters it adds, and the settings the server keeps.
CLUSTER: dict = {}
CLUSTER_SETTINGS = ("TUNEYARD_DATABASE_URL", "TUNEYARD_STORAGE_URL", "TUNEYARD_RAY_ADDRESS",
                    "TUNEYARD_RAY_EVALUATION_CPUS")


def demo(
    keep: bool = typer.Option(False, "--keep",
                              help="Leave the server (and the deployment) running afterwards."),
    port: int = typer.Option(8765, "--port", help="Port of the demo server."),
    home: Path = typer.Option(Path(".tuneyard-demo"), "--home", file_okay=False,
                              help="The demo server's TUNEYARD_HOME (database, artifacts, "
                                   "admin.key, server.log)."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Keep this shell's TUNEYARD_DATABASE_URL, TUNEYARD_STORAGE_URL "
        "and TUNEYARD_RAY_ADDRESS for the server and train with num_workers 2 "
        "(`make demo-cluster` sets them up)."),
) -> None:
    """Run the first-run tour: serve, upload, fine-tune, evaluate, deploy, complete.

    Starts `tuneyard serve` in the background with its own home (or reuses the
    server already answering on --port), fine-tunes `tuneyard-tiny-lm` on the
    example dataset, deploys the best checkpoint and prints a few completions
    from it. The server it started is stopped at the end unless --keep.
    """
    from tuneyard.client import TuneyardClient

    started = time.monotonic()
    if cluster:
        CLUSTER.update(num_workers=2)
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as cleanup:
        server = _server(url, port, home)
        if server.process is not None and not keep:
            cleanup.callback(_stop, server)
        api = cleanup.enter_context(TuneyardClient(server.url, server.key))
        _check_key(api, server)
        run = _tour(api)
        if server.process is not None and not keep:
            _cancel_quietly(api, run)
        _goodbye(server, run, keep=keep)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    out.print(f"\nDemo finished in {minutes}m{seconds:02d}s.")


# --- the server ---------------------------------------------------------------------------


def _step(number: int, title: str) -> float:
    out.print(f"\n[bold]{number}/{STEPS}[/bold] {title}")
    return time.monotonic()


def _took(since: float) -> str:
    seconds = time.monotonic() - since
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def _healthy(url: str) -> bool:
    import httpx

    try:
        res = httpx.get(url + "/healthz", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return res.status_code == 200 and isinstance(_json(res), dict) \
        and _json(res).get("status") == "ok"


def _json(res) -> object:
    try:
        return res.json()
    except ValueError:
        return None


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to here when it is below here."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _server(url: str, port: int, home: Path) -> Server:
    since = _step(1, "Server")
    home = home.resolve()
    key_file = home / "admin.key"
    if _healthy(url):
        key = _existing_key(key_file, url)
        out.print(f"  reusing the tuneyard server already running at {url}")
        return Server(url, key, key_file if key_file.is_file() else None, None, None)
    if _port_taken(port):
        fail(f"port {port} is in use by something that is not a tuneyard server; "
             "pass --port (or `make demo PORT=...`)")
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEYARD_")}
    # Only the demo's own settings: a TUNEYARD_DATABASE_URL meant for another
    # server must never point the demo at that database.
    env.update(TUNEYARD_HOME=str(home), TUNEYARD_PUBLIC_URL=url, PYTHONUNBUFFERED="1")
    if CLUSTER:  # --cluster: the S3 store, PostgreSQL and Ray head set up for it
        env.update({k: v for k, v in os.environ.items() if k in CLUSTER_SETTINGS})
    env.setdefault("HF_HUB_OFFLINE", "1")  # the demo's model is built locally
    if not key_file.is_file() and (home / "tuneyard.db").exists():
        # An older demo home whose admin.key was deleted: the server writes one
        # only into an empty database, so register a fresh one at start.
        key = "ty_demo-" + secrets.token_urlsafe(24)
        _write_private(key_file, key + "\n")
        env["TUNEYARD_BOOTSTRAP_API_KEY"] = key
    log = home / "server.log"
    command = [sys.executable, "-m", "tuneyard.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    # Its own session: Ctrl-C on the demo does not hit the server mid-step;
    # the demo stops it (and its job and model-server children) itself.
    process = spawn(command, log_path=log, env=env, cwd=home)
    (home / "server.pid").write_text(f"{process.pid}\n")
    server = Server(url, "", key_file, process, log)
    out.print(f"  starting `tuneyard serve` (pid {process.pid}) on {url}, home {_shown(home)}")
    try:
        with err.status(f"starting `tuneyard serve` on {url} …") as status:
            deadline = time.monotonic() + SERVER_START_S
            while not _healthy(url):
                if process.poll() is not None:
                    fail(f"`tuneyard serve` exited with {process.returncode}; "
                         f"the end of {_shown(log)}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    fail(f"`tuneyard serve` did not answer within {SERVER_START_S:.0f}s; "
                         f"see {_shown(log)}")
                status.update(f"starting `tuneyard serve` on {url} … {_took(since)}")
                time.sleep(0.25)
        if not key_file.is_file():
            fail(f"the server started but wrote no {_shown(key_file)}")
        server.key = key_file.read_text().strip()
    except BaseException:
        _stop(server)
        raise
    out.print(f"  up in {_took(since)}; log {_shown(log)}")
    return server


def _existing_key(key_file: Path, url: str) -> str:
    if key_file.is_file():
        return key_file.read_text().strip()
    from tuneyard.client.config import load_credentials

    creds = load_credentials(os.environ)
    if creds.api_key and creds.url == url:
        return creds.api_key
    fail(f"a server is already running at {url} but there is no {_shown(key_file)} for it; "
         "pass the --home it was started with, or stop it, or use another --port")


def _check_key(api: TuneyardClient, server: Server) -> None:
    from tuneyard.client import TuneyardAPIError

    try:
        api.projects.list()
    except TuneyardAPIError as exc:
        if exc.status in (401, 403):
            fail(f"the server at {server.url} refused the key from "
                 f"{_shown(server.key_file) if server.key_file else 'your login'}; is it "
                 f"another home's server? Pass its --home, or another --port")
        raise


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _stop(server: Server) -> None:
    """SIGTERM the server's group (it unloads its models and stops its worker), then
    SIGKILL whatever is left of it."""
    process = server.process
    if process is None:
        return
    since = time.monotonic()
    with err.status("stopping the demo server …"):
        stop_group(process, grace=STOP_S)
        process.wait()
    if server.log is not None:
        (server.log.parent / "server.pid").unlink(missing_ok=True)
    out.print(f"stopped the demo server (pid {process.pid}) in {_took(since)}")


# --- the tour ---------------------------------------------------------------------------


@dataclass
class Tour:
    project: str
    train: str
    test: str
    job: str
    best: int
    deployment: str
    deployment_name: str
    sample_prompt: str


def _example(name: str):
    return resources.files("tuneyard") / "examples" / name


def _tour(api: TuneyardClient) -> Tour:
    from ._progress import transfer_progress

    since = _step(2, "Project and dataset")
    project = api.projects.create("tuneyard-demo")
    out.print(f"  created project {project.id} ({project.name})")
    ids = {}
    for role, name in (("train", TRAIN_FILE), ("test", TEST_FILE)):
        with resources.as_file(_example(name)) as path, \
                transfer_progress(f"uploading {name}") as progress:
            dataset = api.datasets.upload(project.id, path, name=name, progress=progress)
        ids[role] = dataset.id
        out.print(f"  uploaded {dataset.id}: {name}, {dataset.num_records} "
                  f"{dataset.shape} records ({role} set)")
    examples = _records(TEST_FILE)
    out.print("  a test record: " + json.dumps(examples[1]))
    out.print(f"  took {_took(since)}")

    since = _step(3, f"Fine-tuning {BASE_MODEL}: {EPOCHS} epochs, a checkpoint and "
                     "its test results per epoch")
    out.print(f"  {BASE_MODEL} is a 2-layer byte-level LM with random weights: the baseline "
              "row is what it scores before any training")
    job = api.jobs.create(project.id, base_model=BASE_MODEL, train_dataset_id=ids["train"],
                          test_dataset_id=ids["test"], name="demo: upper and reverse",
                          parameters={"num_train_epochs": EPOCHS, **CLUSTER})
    out.print(f"  created job {job.id} ({status_style(job.status)}); following it "
              f"(`tuneyard jobs watch {job.id}`):")
    from ._watch import watch_job

    job = watch_job(api, project.id, job.id, interval=1.0)
    if job.status != JobStatus.SUCCESS:
        fail(f"job {job.id} ended {job.status}" + (f": {job.error}" if job.error else "")
             + f"; see `tuneyard jobs show {job.id}`")
    checkpoints = api.jobs.checkpoints(project.id, job.id)
    best = _best(job, checkpoints)
    out.print(f"  took {_took(since)}")

    since = _step(4, f"Deploying checkpoint {best}")
    deployment = api.deployments.create(project.id, training_job_id=job.id, checkpoint=best,
                                        name=DEPLOYMENT_NAME, server_type="on-demand")
    out.print(f"  created {deployment.id}; loading the checkpoint into a model server …")
    with err.status(f"loading {deployment.id} …") as status:
        deadline = time.monotonic() + DEPLOY_S
        while not deployment.settled:
            if time.monotonic() > deadline:
                fail(f"deployment {deployment.id} still {deployment.status} after "
                     f"{DEPLOY_S:.0f}s; see `tuneyard deployments show {deployment.id}`")
            status.update(f"loading {deployment.id}: {deployment.status} … {_took(since)}")
            time.sleep(0.5)
            deployment = api.deployments.get(project.id, deployment.id)
    if deployment.status != DeploymentStatus.DEPLOYED:
        fail(f"deployment {deployment.id} is {deployment.status}"
             + (f": {deployment.error}" if deployment.error else ""))
    out.print(f"  {deployment.id} ({deployment.name}) is {status_style(deployment.status)}: "
              f"checkpoint {best} of {job.id}, in its own model-server process ({_took(since)})")

    since = _step(5, "Completions from the deployment (test prompts it never trained on)")
    rows, right = [], 0
    samples = examples[:6]
    for example in samples:
        answer = api.inference.completions(deployment.id, example["prompt"], max_tokens=8,
                                           temperature=0).text
        ok = answer.strip() == example["completion"].strip()
        right += ok
        rows.append((example["prompt"], answer.strip(), example["completion"].strip(),
                     "[green]✓[/green]" if ok else "[red]✗[/red]"))
    out.print(table("prompt", "completion", "expected", "", rows=rows))
    out.print(f"  {right}/{len(samples)} completions: right  "
              f"(POST /v1/completions, model={deployment.name}; {_took(since)})")
    return Tour(project=project.id, train=ids["train"], test=ids["test"], job=job.id,
                best=best, deployment=deployment.id, deployment_name=deployment.name,
                sample_prompt=samples[1]["prompt"] if len(samples) > 1 else samples[0]["prompt"])


def _records(name: str) -> list[dict]:
    text = _example(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _best(job: TrainingJob, checkpoints: list[Checkpoint]) -> int:
    """The best checkpoint, printed against the baseline on the main metrics."""
    from ._checkpoints import best_checkpoint, value

    best = best_checkpoint(job, checkpoints)
    if best is None:
        if not checkpoints:
            fail(f"job {job.id} finished without a checkpoint")
        best = checkpoints[-1].checkpoint
    chosen = next(c for c in checkpoints if c.checkpoint == best)
    base = (job.baseline_test_results.aggregated_test_result or {}) \
        if job.baseline_test_results else {}
    parts = []
    for metric in ("exact_match", "loss"):
        now, before = _number(value(chosen, metric)), _number(base.get(metric))
        if now is not None:
            parts.append(f"{metric} {now:.4g}" + (f" (baseline {before:.4g})"
                                                   if before is not None else ""))
    if parts:
        out.print(f"  checkpoint {best} against the base model: {', '.join(parts)}")
    return best


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _cancel_quietly(api: TuneyardClient, run: Tour) -> None:
    """Without --keep the demo's deployment ends with its server; cancelled, it is
    not loaded again when that home's server next starts."""
    from tuneyard.client import TuneyardClientError

    try:
        api.deployments.cancel(run.project, run.deployment)
    except TuneyardClientError as exc:
        note(f"could not cancel {run.deployment}: {exc}")


def _goodbye(server: Server, run: Tour, *, keep: bool) -> None:
    _step(6, "What's next")
    key = _shown(server.key_file) if server.key_file else "(your saved login)"
    login = f"tuneyard login --url {server.url}" + (
        f" --key-file {shlex.quote(_shown(server.key_file))}" if server.key_file else "")
    rows = [("server", server.url), ("API key", key)]
    if server.log is not None:
        rows.append(("server log", _shown(server.log)))
    rows += [("project", run.project), ("datasets", f"{run.train} (train), {run.test} (test)"),
             ("job", f"{run.job}, best checkpoint {run.best}"),
             ("deployment", f"{run.deployment} (model name {run.deployment_name})")]
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        out.print(f"  {name:<{width}}  {text}", markup=False)
    commands = [
        login,
        f"tuneyard projects use {run.project}",
        f"tuneyard checkpoints list {run.job}",
        f"tuneyard complete {run.deployment_name} {shlex.quote(run.sample_prompt)}",
        f"tuneyard checkpoints download {run.job} {run.best} --extract checkpoint-{run.best}",
        f"tuneyard jobs create --train {run.train} --test {run.test} "
        f"--base-model {BASE_MODEL} --epochs 5 --watch",
        "tuneyard --help",
    ]
    out.print("Try next, by hand:")
    for command in commands:
        out.print(f"  {command}", markup=False)
    if server.process is None or keep:
        # The dashboard (tuneyard.web) signs in with the same key as `tuneyard login`.
        out.print(f"Or watch it all in a browser: {server.url}/ (the dashboard; sign in "
                  f"with the API key {key})", markup=False)
    if server.process is None:
        out.print(f"The server at {server.url} was already running; it keeps running.")
    elif keep:
        pid_file = _shown(server.log.parent / "server.pid") if server.log else "server.pid"
        out.print(f"The server keeps running (pid {server.process.pid}). Stop it with "
                  f"`kill $(cat {pid_file})`.", markup=False)
    else:
        out.print("The demo server stops now; `make demo KEEP=1` (or `tuneyard demo --keep`) "
                  "leaves it running for the commands above.", markup=False)
