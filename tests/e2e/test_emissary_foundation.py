"""The unmodified Emissary SDK against a real `tuneyard serve`: models, projects, datasets.

Every call goes through emissary-client-sdk==0.4.4 in its own virtualenv, so a
response the SDK cannot parse fails the test with the raw exchange (see conftest).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

MODEL_TYPES = {"completion", "chat", "classification", "embeddings"}

ROWS = [
    {"prompt": "Translate to French: cat", "completion": "chat"},
    {"prompt": "Translate to French: dog", "completion": "chien"},
    {"prompt": "Translate to French: bird", "completion": "oiseau"},
    {"prompt": "Translate to French: fish", "completion": "poisson"},
    {"prompt": "Translate to French: horse", "completion": "cheval"},
    {"prompt": "Translate to French: mouse", "completion": "souris"},
]


@pytest.fixture(scope="module")
def project(emissary) -> dict:
    return emissary.ok("create_project", "foundation-e2e")


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    return path


def _not_found(err: dict) -> None:
    assert err["type"] == "APIErrorNotFound", err
    assert err["status"] == 404 and err["data"]["status"] == 404, err
    assert err["message"], err
    assert isinstance(err["data"]["code"], str), err


# --- base models ---------------------------------------------------------------------


def test_list_models_has_every_type(emissary):
    listed = emissary.ok("list_models")
    assert isinstance(listed, list) and listed
    for m in listed:
        assert m["name"], m
        assert m["type"] in MODEL_TYPES, m
    assert {m["type"] for m in listed} >= MODEL_TYPES, listed


def test_get_each_model_by_name(emissary):
    listed = emissary.ok("list_models")
    one_per_type = {m["type"]: m for m in listed}
    for m in one_per_type.values():
        got = emissary.ok("get_model", m["name"])
        assert got["name"] == m["name"]
        assert got["type"] == m["type"]
        assert got == m, "GET /v1/models/{name} should describe the model as the list does"


def test_unknown_model_is_404(emissary):
    _not_found(emissary.error("get_model", "no-such-model-e2e"))


# --- projects ------------------------------------------------------------------------


def test_create_project_with_name(emissary, project):
    assert isinstance(project["id"], str) and project["id"]
    assert project["name"] == "foundation-e2e"


def test_create_project_without_name(emissary):
    # No body at all (the SDK's default), then an empty JSON object (request={}).
    for op in ("create_project", "create_project_empty"):
        created = emissary.ok(op)
        assert isinstance(created["id"], str) and created["id"], (op, created)
        assert isinstance(created["name"], str), (op, created)
        emissary.ok("delete_project", created["id"])


def test_list_projects(emissary, project):
    listed = emissary.ok("list_projects")
    assert isinstance(listed, list)
    assert {"id": project["id"], "name": project["name"]} in listed, listed


def test_get_project_detail_is_empty(emissary, project):
    got = emissary.ok("get_project", project["id"])
    assert got == {
        "id": project["id"],
        "name": project["name"],
        "datasets": [],
        "training_jobs": [],
        "deployments": [],
    }


def test_unknown_project_is_404(emissary):
    _not_found(emissary.error("get_project", "ms-doesnotexist"))


# --- datasets ------------------------------------------------------------------------


def test_dataset_upload_list_get_download_delete(emissary, project, dataset_file):
    pid = project["id"]
    created = emissary.ok("create_dataset", pid, dataset_file, "french-words")
    assert isinstance(created["id"], str) and created["id"]
    assert created["name"] == "french-words"
    assert isinstance(created["created_at"], int) and created["created_at"] > 1_600_000_000
    did = created["id"]

    listed = emissary.ok("list_datasets", pid)
    assert [d for d in listed if d["id"] == did] == [{**created, "is_uploaded": True}], listed

    detail = emissary.ok("get_dataset", pid, did)
    assert detail["id"] == did and detail["name"] == "french-words"
    assert detail["is_uploaded"] is True, detail
    assert detail["created_at"] == created["created_at"]
    assert isinstance(detail["updated_at"], int), detail
    url = detail["dataset_download_url"]
    assert isinstance(url, str) and re.match(r"https?://", url), detail

    # A signed URL: fetched as a browser would, without the API key.
    with httpx.Client(trust_env=False, timeout=30) as http:
        res = http.get(url)
    assert res.status_code == 200, (res.status_code, res.text[:500])
    assert res.content == dataset_file.read_bytes()

    project_detail = emissary.ok("get_project", pid)
    assert did in [d["id"] for d in project_detail["datasets"]], project_detail

    assert emissary.ok("delete_dataset", pid, did) is None
    _not_found(emissary.error("get_dataset", pid, did))
    assert did not in [d["id"] for d in emissary.ok("list_datasets", pid)]
    _not_found(emissary.error("delete_dataset", pid, did))


def test_dataset_without_name(emissary, project, dataset_file):
    created = emissary.ok("create_dataset", project["id"], dataset_file)
    assert created["id"] and isinstance(created["name"], str), created
    assert emissary.ok("delete_dataset", project["id"], created["id"]) is None


def test_malformed_dataset_names_the_line(emissary, project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(ROWS[0])
        + "\n"
        + json.dumps(ROWS[1])
        + "\n"
        + '{"prompt": "unterminated\n'
        + json.dumps(ROWS[2])
        + "\n"
    )
    err = emissary.error("create_dataset", project["id"], bad, "broken")
    assert err["type"] == "APIErrorInvalidInput", err
    assert err["status"] == 400 and err["data"]["status"] == 400, err
    assert re.search(r"line\W*3\b", err["message"], re.IGNORECASE), err["message"]
    names = [d["name"] for d in emissary.ok("list_datasets", project["id"])]
    assert "broken" not in names, "a rejected upload must not leave a dataset behind"


def test_dataset_in_unknown_project(emissary, dataset_file):
    err = emissary.error("create_dataset", "ms-doesnotexist", dataset_file)
    assert err["status"] == 404, err


# --- deleting a project, authentication ----------------------------------------------


def test_delete_project(emissary, dataset_file):
    created = emissary.ok("create_project", "to-delete")
    emissary.ok("create_dataset", created["id"], dataset_file)
    assert emissary.ok("delete_project", created["id"]) is None
    _not_found(emissary.error("get_project", created["id"]))
    assert created["id"] not in [p["id"] for p in emissary.ok("list_projects")]
    _not_found(emissary.error("delete_project", created["id"]))


@pytest.mark.parametrize("key", ["wrong-key-e2e", None], ids=["wrong-key", "no-key"])
def test_bad_api_key_is_401(emissary, project, key):
    for op in ("list_models", "list_projects"):
        err = emissary.error(op, key=key)
        assert err["type"] == "APIErrorUnauthorized", (op, err)
        assert err["status"] == 401 and err["data"]["status"] == 401, (op, err)
        assert err["message"], err
    # Operations whose spec does not list 401 still see the status (as SDKError).
    err = emissary.error("get_project", project["id"], key=key)
    assert err["http_status"] == 401, err
