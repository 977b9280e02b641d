"""The client against a real server: base models, projects, datasets, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.e2e.server import free_port
from tuneyard.client import (
    Dataset,
    TuneyardAPIError,
    TuneyardClient,
    TuneyardConnectionError,
)

from .conftest import ROWS, require_route, write_jsonl

pytestmark = pytest.mark.slow


def test_health_needs_no_key(server):
    with TuneyardClient(server.url, None) as anonymous:
        assert anonymous.health()["status"] == "ok"


def test_models_list_and_get(api):
    models = api.models.list()
    assert models and all(m.name and m.type for m in models)
    first = api.models.get(models[0].name)
    assert first.name == models[0].name
    assert first.parameter_template == models[0].parameter_template


def test_unknown_model_raises_the_servers_message(api):
    with pytest.raises(TuneyardAPIError) as caught:
        api.models.get("no-such-model")
    assert caught.value.status == 404
    assert caught.value.code == "object_not_found"
    assert "no-such-model" in caught.value.message
    assert str(caught.value).endswith("(HTTP 404)")


def test_bad_key_is_401_with_message(server):
    with TuneyardClient(server.url, "ty-wrong-key") as wrong:
        with pytest.raises(TuneyardAPIError) as caught:
            wrong.projects.list()
    assert caught.value.status == 401
    assert caught.value.message and "401" not in caught.value.message


def test_no_server_is_a_connection_error():
    with TuneyardClient(f"http://127.0.0.1:{free_port()}", "k", timeout=5) as nowhere:
        with pytest.raises(TuneyardConnectionError, match="cannot reach tuneyard"):
            nowhere.health()


def test_project_lifecycle(api):
    created = api.projects.create("lifecycle")
    assert created.id.startswith("ms-") and created.name == "lifecycle"
    assert created.id in {p.id for p in api.projects.list()}
    detail = api.projects.get(created.id)
    assert (detail.datasets, detail.training_jobs, detail.deployments) == ([], [], [])
    api.projects.delete(created.id)
    with pytest.raises(TuneyardAPIError) as caught:
        api.projects.get(created.id)
    assert caught.value.status == 404


def test_project_without_name_gets_one(api):
    project = api.projects.create()
    try:
        assert project.name
    finally:
        api.projects.delete(project.id)


def test_dataset_upload_streams_with_progress(api, project, tmp_path):
    # ~2.5 MB: many 64 KiB chunks, so progress is reported along the way.
    rows = [{"prompt": f"line {i} " + "x" * 200, "completion": f"y{i}"} for i in range(10_000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    total = path.stat().st_size
    calls: list[tuple[int, int | None]] = []

    dataset = api.datasets.upload(project.id, path, name="big",
                                  progress=lambda done, size: calls.append((done, size)))

    assert isinstance(dataset, Dataset) and dataset.id.startswith("ds-")
    assert dataset.name == "big" and dataset.num_records == len(rows)
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(calls) >= total // (64 * 1024)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total
    assert {size for _, size in calls} == {total}


def test_dataset_list_get_delete(api, project, small_dataset):
    uploaded = api.datasets.upload(project.id, small_dataset)
    assert uploaded.name == "plus-one"  # the file name without its suffix
    assert [d.id for d in api.datasets.list(project.id)] == [uploaded.id]
    detail = api.datasets.get(project.id, uploaded.id)
    assert detail.dataset_download_url and detail.upload_by
    assert detail.num_records == len(ROWS)
    assert api.projects.get(project.id).datasets[0].id == uploaded.id
    api.datasets.delete(project.id, uploaded.id)
    assert api.datasets.list(project.id) == []
    with pytest.raises(TuneyardAPIError) as caught:
        api.datasets.get(project.id, uploaded.id)
    assert caught.value.status == 404


def test_invalid_dataset_names_the_line(api, project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"prompt": "only"}) + "\n")
    with pytest.raises(TuneyardAPIError) as caught:
        api.datasets.upload(project.id, bad)
    assert caught.value.status == 400
    assert "line 2" in caught.value.message


def test_dataset_download(api, project, small_dataset, tmp_path):
    uploaded = api.datasets.upload(project.id, small_dataset, name="plus-one")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = api.datasets.download(project.id, uploaded.id, out_dir)
    assert result.path == out_dir / "plus-one.jsonl"
    assert result.path.read_bytes() == small_dataset.read_bytes()
    assert result.verified and result.sha256 == uploaded.sha256 and result.resumed_from == 0
    assert not (out_dir / "plus-one.jsonl.part").exists()


def test_unknown_dataset_download_is_404(api, project, tmp_path):
    with pytest.raises(TuneyardAPIError) as caught:
        api.datasets.download(project.id, "ds-nope", tmp_path / "x")
    assert caught.value.status == 404
    assert not list(Path(tmp_path).iterdir())


def test_test_functions(api):
    functions = require_route(api.test_functions.list)
    assert functions and all(f.name and f.content for f in functions)
    first = api.test_functions.get(functions[0].name)
    assert first.content == functions[0].content
    with pytest.raises(TuneyardAPIError, match="not found"):
        api.test_functions.get("no_such_function")
