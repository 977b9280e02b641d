"""Datasets over the real app: upload, validation errors, signed downloads, delete."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.postgres

GOOD = "".join(
    json.dumps({"prompt": f"add 1 to {i}:", "completion": f" {i + 1}"}) + "\n" for i in range(20)
).encode()


def upload(client, project_id, content: bytes, filename="train.jsonl", name="train"):
    data = {"name": name} if name is not None else {}
    return client.post(f"/v1/projects/{project_id}/datasets",
                       files={"file": (filename, content, "application/octet-stream")},
                       data=data)


def test_upload_list_get_download(client, project):
    resp = upload(client, project["id"], GOOD)
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert ds["id"].startswith("ds-") and ds["name"] == "train" and ds["is_uploaded"] is True
    assert ds["shape"] == "prompt_completion" and ds["num_records"] == 20
    assert isinstance(ds["created_at"], int)

    listed = client.get(f"/v1/projects/{project['id']}/datasets").json()
    assert [d["id"] for d in listed] == [ds["id"]]
    detail = client.get(f"/v1/projects/{project['id']}/datasets/{ds['id']}").json()
    assert detail["upload_by"].startswith("user-")
    url = detail["dataset_download_url"]
    assert url.startswith("http://testserver/v1/files/")

    got = client.get(url.removeprefix("http://testserver"), headers={"X-API-Key": ""})
    assert got.status_code == 200
    assert got.content == GOOD
    import hashlib

    assert got.headers["x-checksum-sha256"] == hashlib.sha256(GOOD).hexdigest()
    part = client.get(url.removeprefix("http://testserver"), headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == GOOD[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(GOOD)}"

    project_detail = client.get(f"/v1/projects/{project['id']}").json()
    assert [d["id"] for d in project_detail["datasets"]] == [ds["id"]]


@pytest.mark.parametrize("filename,content,expected", [
    ("bad.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion"\n',
     "line 2"),
    ("bad.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": [1]}\n',
     "line 2"),
    ("bad.jsonl", b'{"messages": [{"role": "wizard", "content": "hi"}]}\n', "line 1"),
    ("pairs.csv", b"text1,text2,score\na,b,0.5\nc,d,7\n", "line 3"),
    ("bad.csv", b"foo,bar\n1,2\n", "header"),
    ("empty.jsonl", b"", "empty"),
    ("notes.txt.exe", b"hello", "unsupported"),
])
def test_invalid_datasets_are_400_naming_the_problem_and_store_nothing(
        client, project, settings, filename, content, expected):
    resp = upload(client, project["id"], content, filename=filename)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["status"] == 400
    assert expected in body["error"]
    assert client.get(f"/v1/projects/{project['id']}/datasets").json() == []
    artifacts = settings.home.parent / "artifacts"
    assert not any(p.is_file() for p in artifacts.rglob("*")) if artifacts.exists() else True


def test_upload_without_file_is_400(client, project):
    resp = client.post(f"/v1/projects/{project['id']}/datasets", data={"name": "x"},
                       files={"other": ("a", b"b")})
    assert resp.status_code == 400
    assert "file" in resp.json()["error"]


def test_oversized_upload_is_413_and_changes_nothing(client, project, settings):
    settings.max_upload_bytes = 100
    resp = upload(client, project["id"], GOOD)
    assert resp.status_code == 413
    assert "limit" in resp.json()["error"]
    assert client.get(f"/v1/projects/{project['id']}/datasets").json() == []


def test_formats_and_shapes_are_detected(client, project):
    cases = {
        "chat.jsonl": (json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": "yo"}]})
                       + "\n").encode(),
        "io.csv": b"input,expected_output\nhello,world\n",
        "cls.json": json.dumps([{"prompt": "good", "completion": {"pos": 1, "neg": 0}},
                                {"prompt": "bad", "completion": {"pos": 0, "neg": 1}}]).encode(),
        "pairs.csv": b"text1,text2,score\na,b,0.5\n",
    }
    shapes = {}
    for filename, content in cases.items():
        resp = upload(client, project["id"], content, filename=filename, name=None)
        assert resp.status_code == 201, (filename, resp.text)
        shapes[filename] = (resp.json()["shape"], resp.json()["file_format"], resp.json()["name"])
    assert shapes["chat.jsonl"] == ("chat", "jsonl", "chat")
    assert shapes["io.csv"][0] == "input_output"
    assert shapes["cls.json"][:2] == ("classification", "json")
    assert shapes["pairs.csv"][0] == "pairs"


def test_tampered_and_expired_urls_are_403(client, project, settings):
    ds = upload(client, project["id"], GOOD).json()
    url = client.get(f"/v1/projects/{project['id']}/datasets/{ds['id']}").json()[
        "dataset_download_url"].removeprefix("http://testserver")
    payload, _, sig = url.rpartition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + sig
    assert client.get(flipped).status_code == 403
    assert client.get(url[:-2] + "xx").status_code == 403

    from tuneyard.storage.signing import make_token

    expired = make_token(key="x", secret=settings.signing_secret(),
                         expires_at=int(time.time()) - 5)
    resp = client.get(f"/v1/files/{expired}")
    assert resp.status_code == 403 and "expired" in resp.json()["error"]


def test_delete_dataset_removes_row_and_file(client, project, settings):
    ds = upload(client, project["id"], GOOD).json()
    url = client.get(f"/v1/projects/{project['id']}/datasets/{ds['id']}").json()[
        "dataset_download_url"].removeprefix("http://testserver")
    assert client.delete(f"/v1/projects/{project['id']}/datasets/{ds['id']}").status_code == 204
    assert client.get(f"/v1/projects/{project['id']}/datasets/{ds['id']}").status_code == 404
    assert client.get(url).status_code == 404


def test_deleting_a_project_removes_its_datasets_and_files(client, project, app):
    ds = upload(client, project["id"], GOOD).json()
    assert client.delete(f"/v1/projects/{project['id']}").status_code == 204
    assert app.state.store.list(f"projects/{project['id']}/") == []
    from sqlalchemy import select

    from tuneyard.db import session_scope
    from tuneyard.tables import Dataset

    with session_scope(app.state.engine) as session:
        assert session.scalar(select(Dataset).where(Dataset.id == ds["id"])) is None
