"""Base models: the catalog, as `BaseModelSummary` objects."""

from fastapi import APIRouter, Request

from tuneyard.api.deps import CurrentUser
from tuneyard.catalog import BaseModel, load_catalog
from tuneyard.errors import NotFound
from tuneyard.schemas import BaseModelSummary
from tuneyard.training.params import wire_parameters

router = APIRouter(tags=["Base Model"])


def summary(model: BaseModel) -> BaseModelSummary:
    return BaseModelSummary(
        name=model.name, type=model.type,
        # The contract allows string|number values only: use_lora is sent as "false".
        parameter_template=wire_parameters(model.parameter_template),
        support_serverless=model.support_serverless, available=model.available,
        description=model.description,
    )


@router.get("/v1/models", response_model=list[BaseModelSummary])
def list_base_models(request: Request, _user: CurrentUser) -> list[BaseModelSummary]:
    catalog = load_catalog(request.app.state.settings.home)
    return [summary(m) for m in catalog.values()]


@router.get("/v1/models/{base_model_name}", response_model=BaseModelSummary)
def get_base_model(base_model_name: str, request: Request,
                   _user: CurrentUser) -> BaseModelSummary:
    model = load_catalog(request.app.state.settings.home).get(base_model_name)
    if model is None:
        raise NotFound(f"base model {base_model_name!r} not found; GET /v1/models lists them")
    return summary(model)
