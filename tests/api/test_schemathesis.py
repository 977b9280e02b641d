"""Schemathesis against the app's own OpenAPI: generated requests for every
operation, valid and not, with the admin key and a real project in the path;
none may be answered with a 5xx.

The schema is the app's own (`app.openapi()`), read from an app built without a
database; the requests go to one real, started app per module. Bounded (a few
examples per operation, generation only, derandomized) to stay in seconds.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import ADMIN_KEY, fresh_database_url, make_settings, serving

pytestmark = pytest.mark.postgres

EXAMPLES = int(os.environ.get("TUNEYARD_FUZZ_EXAMPLES", "3"))  # more for a deeper run


def _schema():
    from tuneyard.api.app import create_app
    from tuneyard.config import Settings

    # Only the routes are needed: no database, no store, nothing started.
    app = create_app(Settings(home="/nonexistent"), store=object(), engine=object())
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    with serving(make_settings(folder, fresh_database_url(folder))) as (app, client):
        project = client.post("/v1/projects", json={"name": "fuzzed"}).json()
        yield app, client, project["id"]


def send(client, case, project_id: str):
    if case.path_parameters and "project_id" in case.path_parameters:
        case.path_parameters["project_id"] = project_id
    kwargs = case.as_transport_kwargs(base_url="http://testserver",
                                      headers={"X-API-Key": ADMIN_KEY})
    kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    elif kwargs.get("data") is None:
        kwargs.pop("data", None)
    return client.request(**kwargs)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_no_generated_request_is_a_5xx(case, started):
    _app, client, project_id = started
    response = send(client, case, project_id)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
