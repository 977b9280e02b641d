"""Projects: create, list, get (with datasets, jobs, deployments), delete."""

from fastapi import APIRouter, Body, Response

from tuneyard.api.deps import CurrentUser, ProjectDep, SessionDep, StoreDep
from tuneyard.api.paging import PageDep
from tuneyard.schemas import DeploymentSummary, ProjectCreate, ProjectDetail, ProjectSummary
from tuneyard.services import datasets as dataset_service
from tuneyard.services import deployments as deployment_service
from tuneyard.services import projects as project_service
from tuneyard.services.views import job_summaries

router = APIRouter(tags=["Project"])


@router.post("/v1/projects", status_code=201, response_model=ProjectSummary)
def create_project(session: SessionDep, user: CurrentUser,
                   body: ProjectCreate | None = Body(None)) -> ProjectSummary:
    project = project_service.create_project(
        session=session, owner=user, name=body.name if body else None
    )
    return ProjectSummary.model_validate(project)


@router.get("/v1/projects", response_model=list[ProjectSummary])
def list_projects(session: SessionDep, user: CurrentUser, page: PageDep) -> list[ProjectSummary]:
    rows = project_service.list_projects(session=session, owner=user, after=page.after,
                                         limit=page.fetch)
    return [ProjectSummary.model_validate(p) for p in page.of(rows)]


@router.get("/v1/projects/{project_id}", response_model=ProjectDetail)
def get_project(project: ProjectDep, session: SessionDep) -> ProjectDetail:
    datasets = dataset_service.list_datasets(session=session, project=project)
    return ProjectDetail(
        id=project.id, name=project.name, created_at=project.created_at,
        datasets=[d for d in datasets], training_jobs=job_summaries(session, project),
        deployments=[DeploymentSummary.model_validate(d) for d in
                     deployment_service.list_deployments(session=session, project=project)],
    )


@router.delete("/v1/projects/{project_id}", status_code=204, response_class=Response)
def delete_project(project: ProjectDep, session: SessionDep, store: StoreDep) -> Response:
    project_service.delete_project(session=session, store=store, project=project)
    return Response(status_code=204)
