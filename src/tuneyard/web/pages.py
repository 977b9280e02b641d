"""The dashboard's pages (GET): projects, a project, datasets, jobs, results, deployments."""

from __future__ import annotations

from dataclasses import MISSING, fields

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from tuneyard.api.deps import SessionDep, StoreDep, plausible_id
from tuneyard.catalog import load_catalog
from tuneyard.data import TASK_TYPES
from tuneyard.errors import NotFound
from tuneyard.evaluation.functions import list_test_functions
from tuneyard.services import datasets as dataset_service
from tuneyard.services import deployments as deployment_service
from tuneyard.services import jobs as job_service
from tuneyard.services import projects as project_service
from tuneyard.services.urls import download_url
from tuneyard.status import JOB_FINAL
from tuneyard.tables import Checkpoint, TrainingJob
from tuneyard.training.params import FIELD_HELP, TrainingParameters
from tuneyard.web import views
from tuneyard.web.auth import WebProject, WebUser, viewer_of
from tuneyard.web.common import WebRoute, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# The parameters the new-job form offers (the rest: the API or CLI, docs/parameters.md).
COMMON_PARAMETERS = ("num_train_epochs", "max_steps", "learning_rate",
                     "per_device_train_batch_size", "lr_scheduler_type", "warmup_ratio",
                     "save_strategy", "save_steps", "logging_steps", "keep_checkpoints",
                     "use_lora", "max_seq_length", "seed", "early_stopping_patience")


def parameter_fields() -> list[dict]:
    """The form's fields, with defaults and bounds from `TrainingParameters` (the same
    source docs/parameters.md is generated from)."""
    out = []
    for f in fields(TrainingParameters):
        if f.name not in COMMON_PARAMETERS:
            continue
        default = f.default if f.default is not MISSING else None
        meta = dict(f.metadata)
        kind = ("bool" if isinstance(default, bool) else "choice" if "choices" in meta
                else "int" if isinstance(default, int) else "float")
        low = meta.get("ge", meta.get("gt"))
        high = meta.get("le", meta.get("lt"))
        if "also" in meta:  # e.g. max_steps: -1 (unset) is allowed below the bound
            low = min([low, *meta["also"]]) if low is not None else None
        out.append({"name": f.name, "default": default, "kind": kind, "min": low, "max": high,
                    "choices": meta.get("choices"), "help": FIELD_HELP.get(f.name, ""),
                    "step": "1" if kind == "int" else "any"})
    return sorted(out, key=lambda p: COMMON_PARAMETERS.index(p["name"]))


@router.get("/login")
def login_page(request: Request, db: SessionDep, next: str = "/"):
    if viewer_of(request, db) is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", next=next if next.startswith("/") else "/")


@router.get("/")
def projects_page(request: Request, viewer: WebUser, db: SessionDep):
    projects = project_service.list_projects(session=db, owner=viewer.user)
    counts = {p.id: (len(job_service.list_jobs(session=db, project=p)),
                     len(deployment_service.list_deployments(session=db, project=p)))
              for p in projects}
    return render(request, "projects.html", projects=projects, counts=counts)


@router.get("/projects/{project_id}")
def project_page(request: Request, project: WebProject, viewer: WebUser, db: SessionDep):
    return render(
        request, "project.html", project=project,
        datasets=dataset_service.list_datasets(session=db, project=project),
        jobs=job_service.list_jobs(session=db, project=project),
        deployments=deployment_service.list_deployments(session=db, project=project),
    )


@router.get("/projects/{project_id}/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: str, project: WebProject, viewer: WebUser,
                 db: SessionDep, store: StoreDep):
    dataset = dataset_service.get_dataset(session=db, project=project, dataset_id=dataset_id)
    records = views.dataset_preview(store, dataset)
    columns = list(dict.fromkeys(k for r in records for k in r))
    url = download_url(request.app.state.settings, key=dataset.storage_key,
                       filename=dataset.filename, sha256=dataset.sha256)
    return render(request, "dataset.html", project=project, dataset=dataset, records=records,
                  columns=columns, download=url)


@router.get("/projects/{project_id}/jobs/new")
def new_job_page(request: Request, project: WebProject, viewer: WebUser, db: SessionDep,
                 from_job: str | None = None, checkpoint: int | None = Query(None, ge=1),
                 dataset: str | None = None):
    settings = request.app.state.settings
    jobs = job_service.list_jobs(session=db, project=project)
    sources = {j.id: [c.number for c in job_service.list_checkpoints(session=db, job=j)
                      if not c.pruned] for j in jobs}
    return render(
        request, "job_new.html", project=project,
        models=list(load_catalog(settings.home).values()),
        datasets=dataset_service.list_datasets(session=db, project=project),
        task_types=TASK_TYPES, functions=list_test_functions(settings.home),
        parameters=parameter_fields(), jobs=[j for j in jobs if sources[j.id]],
        sources=sources, from_job=from_job, from_checkpoint=checkpoint,
        filled={"train_dataset_id": dataset} if dataset else {},
    )


def _job(db, project, job_id: str) -> tuple[TrainingJob, list[Checkpoint]]:
    plausible_id(job_id, "training job")
    job = job_service.get_job(session=db, project=project, job_id=job_id)
    return job, job_service.list_checkpoints(session=db, job=job)


@router.get("/projects/{project_id}/jobs/{job_id}")
def job_page(request: Request, job_id: str, project: WebProject, viewer: WebUser,
             db: SessionDep):
    job, checkpoints = _job(db, project, job_id)
    return render(request, "job.html", project=project, job=job,
                  table=views.job_table(job, checkpoints),
                  log=views.job_log(job, checkpoints, session=db),
                  final=job.status in JOB_FINAL,
                  deployments=[d for d in deployment_service.list_deployments(
                      session=db, project=project) if d.training_job_id == job.id])


@router.get("/projects/{project_id}/jobs/{job_id}/live")
def job_live(request: Request, job_id: str, project: WebProject, viewer: WebUser,
             db: SessionDep):
    """The parts of the job page that change while it runs (htmx swaps them in)."""
    job, checkpoints = _job(db, project, job_id)
    return render(request, "_job_live.html", project=project, job=job,
                  table=views.job_table(job, checkpoints),
                  log=views.job_log(job, checkpoints, session=db),
                  final=job.status in JOB_FINAL)


@router.get("/projects/{project_id}/jobs/{job_id}/curves.json")
def job_curves(job_id: str, project: WebProject, viewer: WebUser, db: SessionDep):
    job, checkpoints = _job(db, project, job_id)
    return JSONResponse(views.curves(job, checkpoints), headers={"Cache-Control": "no-store"})


def _evaluation(db, job: TrainingJob, number: int) -> dict | None:
    """The stored results document of checkpoint `number` (0: the baseline)."""
    if number == 0:
        return job.baseline_test_results
    row = next((c for c in job_service.list_checkpoints(session=db, job=job)
                if c.number == number), None)
    if row is None:
        raise NotFound(f"training job {job.id} has no checkpoint {number}")
    return row.test_results


@router.get("/projects/{project_id}/jobs/{job_id}/checkpoints/{number}/download")
def download_checkpoint(request: Request, job_id: str, number: int, project: WebProject,
                        viewer: WebUser, db: SessionDep):
    job, checkpoints = _job(db, project, job_id)
    row = next((c for c in checkpoints if c.number == number), None)
    if row is None or not row.archive_key or row.pruned:
        raise NotFound(f"checkpoint {number} of {job.id} has no weights to download")
    url = download_url(request.app.state.settings, key=row.archive_key,
                       sha256=row.archive_sha256, filename=f"{job.id}-checkpoint-{number}.tar")
    return RedirectResponse(url, status_code=303)


@router.get("/projects/{project_id}/jobs/{job_id}/checkpoints/{number}/results")
def results_page(request: Request, job_id: str, number: int, project: WebProject,
                 viewer: WebUser, db: SessionDep, store: StoreDep,
                 failures: bool = False, against: str | None = None):
    job, checkpoints = _job(db, project, job_id)
    # The form sends `against=` for "compare with nothing".
    against = int(against) if against and against.isdigit() else None
    document = _evaluation(db, job, number)
    rows = views.read_rows(store, document)
    if rows is None:
        raise NotFound(f"checkpoint {number} of {job.id} has no test results yet")
    other = None
    if against is not None and against != number:
        other = views.read_rows(store, _evaluation(db, job, against))
        if other is None:
            raise NotFound(f"checkpoint {against} of {job.id} has no test results yet")
    others = {r.get("index", i): r for i, r in enumerate(other or [])}
    total = len(rows)
    failed = sum(1 for r in rows if views.is_failure(r))
    shown = [r for r in rows if not failures or views.is_failure(r)][:views.MAX_RESULT_ROWS]
    details = views.read_details(store, document)
    table = views.job_table(job, checkpoints)
    return render(
        request, "results.html", project=project, job=job, number=number, rows=shown,
        total=total, failed=failed, failures=failures, against=against if other else None,
        others=others, details=details, diff=views.diff_html, is_failure=views.is_failure,
        metrics=next((r.metrics for r in table.rows if r.number == number), {}),
        other_metrics=next((r.metrics for r in table.rows if r.number == against), {}),
        choices=[r.number for r in table.rows if r.has_results and r.number != number],
        generation=job.task_type == "text-generation",
    )


@router.get("/projects/{project_id}/deployments/{deployment_id}")
def deployment_page(request: Request, deployment_id: str, project: WebProject,
                    viewer: WebUser, db: SessionDep):
    plausible_id(deployment_id, "deployment")
    row = deployment_service.get_deployment(session=db, project=project,
                                            deployment_id=deployment_id)
    running = request.app.state.deployments.running.get(row.id)
    return render(request, "deployment.html", project=project, deployment=row,
                  active=running is not None, labels=running.labels if running else None)


@router.get("/projects/{project_id}/deployments/{deployment_id}/status")
def deployment_status(request: Request, deployment_id: str, project: WebProject,
                      viewer: WebUser, db: SessionDep):
    plausible_id(deployment_id, "deployment")
    row = deployment_service.get_deployment(session=db, project=project,
                                            deployment_id=deployment_id)
    running = request.app.state.deployments.running.get(row.id)
    return render(request, "_deployment_status.html", project=project, deployment=row,
                  active=running is not None)
