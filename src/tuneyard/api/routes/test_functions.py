"""Test functions (Emissary v2): built-ins plus the administrator's own files."""

from fastapi import APIRouter

from tuneyard.api.deps import CurrentUser, SettingsDep
from tuneyard.errors import NotFound
from tuneyard.evaluation.functions import list_test_functions
from tuneyard.schemas import TestingFunctionSummary

router = APIRouter(tags=["Testing Functions"])


def _summaries(settings) -> list[TestingFunctionSummary]:
    return [TestingFunctionSummary(name=f.name, content=f.content,
                                   dependencies=list(f.dependencies), builtin=f.builtin)
            for f in list_test_functions(settings.home)]


@router.get("/v1/testing-functions", response_model=list[TestingFunctionSummary])
def list_testing_functions(settings: SettingsDep,
                           _user: CurrentUser) -> list[TestingFunctionSummary]:
    return _summaries(settings)


@router.get("/v1/testing-functions/{name}", response_model=TestingFunctionSummary)
def get_testing_function(name: str, settings: SettingsDep,
                         _user: CurrentUser) -> TestingFunctionSummary:
    for summary in _summaries(settings):
        if summary.name == name:
            return summary
    raise NotFound(f"test function {name!r} not found; GET /v1/testing-functions lists them")
