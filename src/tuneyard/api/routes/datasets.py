"""Datasets: multipart upload (validated, streamed to the store), list, get, delete."""

from fastapi import APIRouter, Request, Response, UploadFile

from tuneyard.api.deps import CurrentUser, ProjectDep, SessionDep, SettingsDep, StoreDep
from tuneyard.api.guard import accepts_upload
from tuneyard.api.paging import PageDep
from tuneyard.errors import InvalidInput
from tuneyard.schemas import DatasetDetail, DatasetSummary
from tuneyard.services import datasets as dataset_service
from tuneyard.services.urls import download_url

router = APIRouter(tags=["Dataset"])


@router.post("/v1/projects/{project_id}/datasets", status_code=201,
             response_model=DatasetSummary)
@accepts_upload  # the request guard counts the body against the upload limit as it streams
async def create_dataset(request: Request, project: ProjectDep, session: SessionDep,
                         store: StoreDep, settings: SettingsDep,
                         user: CurrentUser) -> DatasetSummary:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("body must be multipart/form-data with a 'file' field")
    form = await request.form()
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) and not hasattr(upload, "read"):
            raise InvalidInput("file: required (multipart field 'file' with the dataset)")
        name = form.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidInput("name: must be a string")
        # Validation and the store write are blocking file work: keep them off
        # the event loop so other requests are served meanwhile.
        from starlette.concurrency import run_in_threadpool

        dataset = await run_in_threadpool(
            dataset_service.create_dataset, session=session, store=store, project=project,
            user=user, source=upload.file, filename=upload.filename, name=name,
            max_bytes=settings.max_upload_bytes, tmp_dir=settings.home / "tmp",
        )
    finally:
        await form.close()
    return DatasetSummary.model_validate(dataset)


@router.get("/v1/projects/{project_id}/datasets", response_model=list[DatasetSummary])
def list_datasets(project: ProjectDep, session: SessionDep,
                  page: PageDep) -> list[DatasetSummary]:
    rows = dataset_service.list_datasets(session=session, project=project, after=page.after,
                                         limit=page.fetch)
    return [DatasetSummary.model_validate(d) for d in page.of(rows)]


@router.get("/v1/projects/{project_id}/datasets/{dataset_id}", response_model=DatasetDetail)
def get_dataset(dataset_id: str, project: ProjectDep, session: SessionDep,
                settings: SettingsDep) -> DatasetDetail:
    dataset = dataset_service.get_dataset(session=session, project=project,
                                          dataset_id=dataset_id)
    url = download_url(settings, key=dataset.storage_key, filename=dataset.filename,
                       sha256=dataset.sha256)
    return DatasetDetail.model_validate(
        {**DatasetSummary.model_validate(dataset).model_dump(),
         "dataset_download_url": url, "upload_by": dataset.upload_by,
         "updated_at": dataset.updated_at}
    )


@router.delete("/v1/projects/{project_id}/datasets/{dataset_id}", status_code=204,
               response_class=Response)
def delete_dataset(dataset_id: str, project: ProjectDep, session: SessionDep,
                   store: StoreDep) -> Response:
    dataset_service.delete_dataset(session=session, store=store, project=project,
                                   dataset_id=dataset_id)
    return Response(status_code=204)
