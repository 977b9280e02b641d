"""Hostile input over the real app: every case is a 4xx with the contract's error
body (`{status, error}`, 404 adds `code`), never a 500, and changes nothing.

Each case names a route, a request and the status it must get. Before and after
each one the listings (projects, datasets, jobs, deployments) and the store's
keys are snapshotted and compared.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import fresh_database_url, make_settings, serving

pytestmark = pytest.mark.postgres

GOOD = "".join(
    json.dumps({"prompt": f"add 1 to {i}:", "completion": f" {i + 1}"}) + "\n" for i in range(8)
).encode()

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
DIGITS = "9" * 5000


@dataclass
class Case:
    id: str
    method: str
    path: str  # {p}: the project, {ds}: a dataset, {token}: its download token
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict | None = None
    data: dict | None = None
    says: str = ""  # what the error message must mention


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json"}


DEPLOY = "/v1/projects/{p}/deployments"
JOBS = "/v1/projects/{p}/training-jobs"
DATASETS = "/v1/projects/{p}/datasets"


def _deploy_raw(checkpoint: str) -> bytes:
    return ('{"training_job_id": "{job}", "checkpoint": ' + checkpoint + "}").encode()


def _job_raw(extra: str) -> bytes:
    return ('{"base_model": "tuneyard-tiny-lm", "train_dataset_id": "{ds}", '
            + extra + "}").encode()


def _continue_raw(checkpoint: str) -> bytes:
    return ('{"base_model": "{job}", "base_model_option": "fine-tuned", '
            '"train_dataset_id": "{ds}", "checkpoint": ' + checkpoint + "}").encode()


CASES = [
    # Deeply nested JSON bodies (RecursionError in the decoder).
    Case("deep-array-project", "POST", "/v1/projects", 400, content=DEEP,
         headers=_json_headers()),
    Case("deep-object-deployment", "POST", DEPLOY, 400, content=DEEP_OBJECT,
         headers=_json_headers()),
    Case("deep-object-job", "POST", JOBS, 400, content=DEEP_OBJECT, headers=_json_headers()),
    # Numbers of any size or kind where a bounded integer belongs.
    Case("checkpoint-10**20", "POST", DEPLOY, 400, says="checkpoint",
         json={"training_job_id": "{job}", "checkpoint": 10**20}),
    Case("checkpoint-2**63", "POST", DEPLOY, 400,
         json={"training_job_id": "{job}", "checkpoint": 2**63}),
    Case("checkpoint-2**31", "POST", DEPLOY, 400,
         json={"training_job_id": "{job}", "checkpoint": 2**31}),
    Case("checkpoint-negative", "POST", DEPLOY, 400,
         json={"training_job_id": "{job}", "checkpoint": -1}),
    Case("checkpoint-1e999", "POST", DEPLOY, 400, content=_deploy_raw("1e999"),
         headers=_json_headers()),
    Case("checkpoint-NaN", "POST", DEPLOY, 400, content=_deploy_raw("NaN"),
         headers=_json_headers()),
    Case("checkpoint-Infinity", "POST", DEPLOY, 400, content=_deploy_raw("-Infinity"),
         headers=_json_headers()),
    Case("checkpoint-5000-digits", "POST", DEPLOY, 400, content=_deploy_raw(DIGITS),
         headers=_json_headers()),
    Case("checkpoint-fraction", "POST", DEPLOY, 400,
         json={"training_job_id": "{job}", "checkpoint": 1.5}),
    Case("inactive-timeout-10**20", "POST", DEPLOY, 400, says="inactive_timeout",
         json={"training_job_id": "{job}", "checkpoint": 1, "inactive_timeout": 10**20}),
    Case("job-checkpoint-1e999", "POST", JOBS, 400, content=_continue_raw("1e999"),
         headers=_json_headers()),
    Case("job-checkpoint-10**20", "POST", JOBS, 400,
         content=_continue_raw("100000000000000000000"), headers=_json_headers()),
    Case("job-checkpoint-2**63", "POST", JOBS, 400, content=_continue_raw(str(2**63)),
         headers=_json_headers()),
    Case("job-split-NaN", "POST", JOBS, 400,
         content=_job_raw('"train_test_split_ratio": NaN'), headers=_json_headers()),
    Case("job-max-steps-400-digits", "POST", JOBS, 400,
         content=_job_raw('"parameters": {"max_steps": ' + "9" * 400 + "}"),
         headers=_json_headers()),
    # Bodies that are not what the route reads.
    Case("project-invalid-utf8", "POST", "/v1/projects", 400, content=b'{"name": "\xff\xfe"}',
         headers=_json_headers()),
    Case("project-not-json", "POST", "/v1/projects", 400, content=b"{nope",
         headers=_json_headers()),
    Case("project-name-too-long", "POST", "/v1/projects", 400, json={"name": "x" * 201}),
    Case("deployment-body-is-list", "POST", DEPLOY, 400, json=[1, 2, 3]),
    Case("dataset-as-json", "POST", DATASETS, 400, json={"file": "x"}),
    Case("dataset-malformed-multipart", "POST", DATASETS, 400, content=b"--xx\r\nbroken",
         headers={"content-type": "multipart/form-data; boundary=xx"}),
    # Strings of any length or encoding in uploads.
    Case("dataset-file-name-300", "POST", DATASETS, 400, says="file: the file name",
         files={"file": ("a" * 296 + ".jsonl", GOOD, "application/octet-stream")}),
    Case("dataset-file-name-300-multibyte", "POST", DATASETS, 400,
         files={"file": ("é" * 300 + ".jsonl", GOOD, "application/octet-stream")}),
    Case("dataset-name-too-long", "POST", DATASETS, 400, data={"name": "n" * 1000}, says="name:",
         files={"file": ("t.jsonl", GOOD, "application/octet-stream")}),
    Case("dataset-record-nested-deep", "POST", DATASETS, 400, says="nested too deeply",
         files={"file": ("t.jsonl", DEEP_OBJECT + b"\n", "application/octet-stream")}),
    Case("dataset-second-record-nested-deep", "POST", DATASETS, 400,
         files={"file": ("t.jsonl", GOOD + DEEP + b"\n", "application/octet-stream")}),
    Case("dataset-json-array-nested-deep", "POST", DATASETS, 400,
         files={"file": ("t.json", DEEP, "application/octet-stream")}),
    # Odd headers.
    Case("range-5000-digit-start", "GET", "/v1/files/{token}", 416,
         headers={"range": f"bytes={DIGITS}-"}),
    Case("api-key-huge", "GET", "/v1/projects", 401, headers={"x-api-key": "k" * 10_000}),
    Case("bearer-odd-bytes", "GET", "/v1/projects", 401,
         headers={"x-api-key": "", "authorization": "Bearer \x7f\x01\x02"}),
    Case("token-garbage", "GET", "/v1/files/" + "A" * 5000, 403),
    # Unknown, huge or odd ids in paths.
    Case("project-id-huge", "GET", "/v1/projects/" + "p" * 5000, 404),
    Case("project-id-nul", "GET", "/v1/projects/pr-%00", 404),
    Case("project-id-unicode", "DELETE", "/v1/projects/%F0%9F%92%A5", 404),
    Case("dataset-id-huge", "GET", DATASETS + "/" + "d" * 5000, 404),
    Case("dataset-id-nul", "DELETE", DATASETS + "/ds-%00", 404),
    Case("job-id-control", "GET", JOBS + "/tr-%0A%0D", 404),
    Case("job-id-huge-checkpoints", "GET", JOBS + "/" + "9" * 5000 + "/checkpoints", 404),
    Case("deployment-id-nul", "GET", DEPLOY + "/dp-%00", 404),
    Case("deployment-id-huge-cancel", "POST", DEPLOY + "/" + "x" * 5000 + "/cancel", 404),
    Case("deployment-job-id-nul", "POST", DEPLOY, 400,
         json={"training_job_id": "tr-\x00", "checkpoint": 1}),
    Case("job-dataset-id-nul", "POST", JOBS, 400,
         json={"base_model": "tuneyard-tiny-lm", "train_dataset_id": "ds-\x00"}),
    Case("model-name-huge", "GET", "/v1/models/" + "m" * 5000, 404),
    Case("testing-function-nul", "GET", "/v1/testing-functions/f%00", 404),
    # Keys: checked before anything else, bodies included.
    Case("models-empty-key", "GET", "/v1/models", 401, headers={"x-api-key": ""}),
    Case("testing-functions-basic-auth", "GET", "/v1/testing-functions", 401,
         headers={"x-api-key": "", "authorization": "Basic dXNlcjpwYXNz"}),
    Case("no-key-malformed-json", "POST", "/v1/projects", 401, content=b"{nope",
         headers={"x-api-key": "", "content-type": "application/json"}),
    Case("bad-key-job-body", "POST", JOBS, 401, says="invalid API key",
         json={"base_model": "tuneyard-tiny-lm", "train_dataset_id": "{ds}"},
         headers={"x-api-key": "ty-not-a-key"}),
    # Bodies over their limit.
    Case("job-body-over-1-MiB", "POST", JOBS, 413, says="TUNEYARD_MAX_JSON_BYTES",
         content=_job_raw('"description": "' + "d" * (1024**2 + 10) + '"'),
         headers=_json_headers()),
    Case("method-not-allowed", "PUT", "/v1/projects", 405),
    Case("healthz-post", "POST", "/healthz", 405),
    # Paging parameters.
    Case("projects-limit-0", "GET", "/v1/projects?limit=0", 400, says="limit"),
    Case("projects-limit-30-digits", "GET", "/v1/projects?limit=" + "9" * 30, 400,
         says="limit"),
    Case("datasets-limit-negative", "GET", DATASETS + "?limit=-1", 400, says="limit"),
    Case("jobs-after-too-long", "GET", JOBS + "?after=" + "é" * 100, 400, says="after"),
    Case("deployments-limit-fraction", "GET", DEPLOY + "?limit=1.5", 400, says="limit"),
    # Unknown ids on every route that names one.
    Case("project-get-unknown", "GET", "/v1/projects/ms-doesnotexist", 404),
    Case("project-delete-unknown", "DELETE", "/v1/projects/ms-doesnotexist", 404),
    Case("dataset-get-unknown", "GET", DATASETS + "/ds-doesnotexist", 404),
    Case("job-get-unknown", "GET", JOBS + "/tr-doesnotexist", 404),
    Case("job-cancel-unknown", "POST", JOBS + "/tr-doesnotexist/cancel", 404),
    Case("job-delete-unknown", "DELETE", JOBS + "/tr-doesnotexist", 404),
    Case("deployment-reactivate-unknown", "POST", DEPLOY + "/dp-doesnotexist/reactivate", 404),
    Case("deployment-delete-unknown", "DELETE", DEPLOY + "/dp-doesnotexist", 404),
    Case("deployment-completions-unknown", "POST", DEPLOY + "/dp-doesnotexist/completions",
         404, json={"prompt": "hi"}),
    Case("deployment-cancel-unknown", "POST", DEPLOY + "/dp-doesnotexist/cancel", 404),
    # Per-deployment inference bodies of the wrong shape (refused before any load).
    Case("completions-prompt-number", "POST", DEPLOY + "/{dp}/completions", 400,
         json={"prompt": 5}),
    Case("completions-max-tokens-huge", "POST", DEPLOY + "/{dp}/completions", 400,
         json={"prompt": "hi", "max_tokens": 10**20}),
    Case("chat-messages-string", "POST", DEPLOY + "/{dp}/chat/completions", 400,
         json={"messages": "hello"}),
    Case("classification-empty", "POST", DEPLOY + "/{dp}/classification", 400, json={}),
    Case("embeddings-list-sentence", "POST", DEPLOY + "/{dp}/embeddings", 400,
         json={"source_sentence": ["a"], "target_sentence": "b"}),
    # OpenAI-style inference.
    Case("openai-chat-no-model", "POST", "/v1/chat/completions", 400,
         json={"messages": [{"role": "user", "content": "hi"}]}),
    Case("openai-completions-unknown-model", "POST", "/v1/completions", 404,
         json={"model": "no-such-model", "prompt": "hi"}),
    Case("openai-embeddings-bad-format", "POST", "/v1/embeddings", 400,
         says="encoding_format", json={"model": "{dp}", "input": "a",
                                       "encoding_format": "hex"}),
    Case("openai-classification-bad-format", "POST", "/v1/classification", 400,
         says="data_format", json={"model": "{dp}", "input": "a", "data_format": "raw"}),
    # Uploads and downloads.
    Case("dataset-suffix-exe", "POST", DATASETS, 400, says="unsupported file type",
         files={"file": ("t.exe", GOOD, "application/octet-stream")}),
    Case("dataset-multipart-no-boundary", "POST", DATASETS, 400, content=b"x",
         headers={"content-type": "multipart/form-data"}),
    Case("token-tampered", "GET", "/v1/files/{token}x", 403),
    Case("range-past-the-end", "GET", "/v1/files/{token}", 416,
         headers={"range": "bytes=10000000-"}),
]


def snapshot(client, app) -> dict:
    """Everything a bad request must not change: listings and store keys."""
    state: dict = {"store": sorted(app.state.store.list(""))}
    projects = client.get("/v1/projects").json()
    state["projects"] = projects
    for p in projects:
        for kind in ("datasets", "training-jobs", "deployments"):
            resp = client.get(f"/v1/projects/{p['id']}/{kind}")
            assert resp.status_code == 200, resp.text
            state[f"{p['id']}/{kind}"] = resp.json()
    return state


def fill(content: bytes | None, world: dict) -> bytes | None:
    if content is None:
        return None
    for name in ("ds", "job", "dp"):
        content = content.replace(b"{%s}" % name.encode(), world[name].encode())
    return content


def make_world(client) -> dict:
    """A project holding one dataset, one (pending) job and one serverless deployment,
    and a signed download token for the dataset."""
    project = client.post("/v1/projects", json={"name": "p1"}).json()
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": ("train.jsonl", GOOD, "application/octet-stream")},
                       data={"name": "train"})
    assert resp.status_code == 201, resp.text
    ds = resp.json()["id"]
    url = client.get(f"/v1/projects/{project['id']}/datasets/{ds}").json()["dataset_download_url"]
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs",
                       json={"base_model": "tuneyard-tiny-lm", "train_dataset_id": ds})
    assert resp.status_code == 201, resp.text
    job = resp.json()["id"]
    # Nothing loads until a valid request; settled as Deployed so that the listings
    # stay still while the cases run.
    resp = client.post(f"/v1/projects/{project['id']}/deployments",
                       json={"training_job_id": "tuneyard-tiny-lm", "checkpoint": 0,
                             "server_type": "serverless"})
    assert resp.status_code == 201, resp.text
    dp = resp.json()["id"]
    deadline = time.monotonic() + 20
    while client.get(f"/v1/projects/{project['id']}/deployments/{dp}").json()["status"] \
            != "Deployed":
        assert time.monotonic() < deadline, "the deployment did not settle"
        time.sleep(0.05)
    return {"p": project["id"], "ds": ds, "job": job, "dp": dp,
            "token": url.rsplit("/", 1)[1]}


@pytest.fixture
def world(client):
    return make_world(client)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(app, client, world) for the table: one app for every case, since no case may
    change anything (which each case checks)."""
    folder = tmp_path_factory.mktemp("bad-input")
    with serving(make_settings(folder, fresh_database_url(folder))) as (app, client):
        yield app, client, make_world(client)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_4xx_and_changes_nothing(case: Case, shared):
    app, client, world = shared
    path = case.path.format(**world)
    content = fill(case.content, world)
    body = None
    if case.json is not None:
        text = json.dumps(case.json)
        for name in ("ds", "job", "dp"):
            text = text.replace("{" + name + "}", world[name])
        body = json.loads(text)
    before = snapshot(client, app)
    resp = client.request(case.method, path, json=body, content=content,
                          headers=case.headers or None, files=case.files, data=case.data)
    assert resp.status_code == case.status, resp.text[:500]
    if resp.status_code != 416:
        body = resp.json()
        assert body["status"] == case.status
        assert isinstance(body["error"], str) and body["error"]
        assert case.says in body["error"]
        assert len(body["error"]) < 2000, "the error must not echo the whole input"
        if case.status == 404:
            assert body["code"] == "object_not_found"
        else:
            assert set(body) <= {"status", "error", "code"}
    assert resp.headers.get("x-request-id")
    assert snapshot(client, app) == before


@pytest.mark.parametrize("header,status", [
    (f"bytes={DIGITS}-", 416),
    (f"bytes=0-{DIGITS}", 206),
    (f"bytes=-{DIGITS}", 206),
    (f"bytes={DIGITS}-{DIGITS}", 416),
])
def test_range_with_huge_numbers(shared, header, status):
    _app, client, world = shared
    resp = client.get(f"/v1/files/{world['token']}", headers={"range": header})
    assert resp.status_code == status
    if status == 206:
        assert resp.content == GOOD


def test_unexpected_error_is_a_500_carrying_the_request_id(app, client, project, monkeypatch,
                                                           caplog):
    from fastapi.testclient import TestClient

    from tests.conftest import ADMIN_KEY
    from tuneyard.services import datasets as dataset_service

    def boom(**_kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(dataset_service, "list_datasets", boom)
    raw = TestClient(app, headers={"X-API-Key": ADMIN_KEY}, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="tuneyard.api"):
        resp = raw.get(f"/v1/projects/{project['id']}/datasets")
    assert resp.status_code == 500
    request_id = resp.headers["x-request-id"]
    assert request_id
    body = resp.json()
    assert set(body) == {"status", "error"} and body["status"] == 500
    assert request_id in body["error"] and "a bug" not in body["error"]
    assert any(request_id in r.getMessage() for r in caplog.records)


def test_validation_type_error_is_a_400(app, client, project, monkeypatch):
    from tuneyard.services import datasets as dataset_service

    def odd(**_kwargs):
        raise OverflowError("int too large to convert")

    monkeypatch.setattr(dataset_service, "list_datasets", odd)
    resp = client.get(f"/v1/projects/{project['id']}/datasets")
    assert resp.status_code == 400
    assert resp.json()["status"] == 400 and "int too large" in resp.json()["error"]
    assert resp.headers["x-request-id"]


def test_request_ids_differ(client):
    a = client.get("/v1/projects").headers["x-request-id"]
    b = client.get("/v1/projects").headers["x-request-id"]
    assert a and b and a != b


def test_long_multibyte_file_name_is_kept(client, world):
    """A name within the limit but over a file system's 255 bytes is stored fine."""
    name = "é" * 240 + ".jsonl"
    resp = client.post(f"/v1/projects/{world['p']}/datasets",
                       files={"file": (name, GOOD, "application/octet-stream")})
    assert resp.status_code == 201, resp.text
    detail = client.get(f"/v1/projects/{world['p']}/datasets/{resp.json()['id']}").json()
    assert detail["name"] == "é" * 200
    got = client.get(detail["dataset_download_url"].removeprefix("http://testserver"))
    assert got.status_code == 200 and got.content == GOOD


def test_every_request_number_is_bounded():
    """Every int in a request model has an upper bound within the database's
    range (a bigger one is a 400, not an overflow in the database), and no float
    takes NaN or Infinity."""
    import annotated_types
    from pydantic import BaseModel

    from tuneyard import schemas

    requests = [m for m in vars(schemas).values()
                if isinstance(m, type) and issubclass(m, BaseModel)
                and m.__module__ == schemas.__name__
                and (m.__name__.endswith(("Request", "Create")) or m is schemas.Sampling)]
    assert schemas.DeploymentCreate in requests and schemas.Sampling in requests
    for model in requests:
        for name, info in model.model_fields.items():
            if "int" not in str(info.annotation) and "float" not in str(info.annotation):
                continue
            if name in ("parameters", "rebalance_data"):
                continue  # free-form maps, bounded by the job-parameter checks
            where = f"{model.__name__}.{name}"
            if "int" in str(info.annotation):
                uppers = [m.le if isinstance(m, annotated_types.Le) else m.lt
                          for m in info.metadata
                          if isinstance(m, annotated_types.Le | annotated_types.Lt)]
                assert uppers and uppers[0] <= 2**63 - 1, f"{where} is unbounded"
            else:
                assert any(getattr(m, "allow_inf_nan", None) is False
                           for m in info.metadata), f"{where} takes NaN and Infinity"
