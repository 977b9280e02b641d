"""Writes are committed before the answer: a commit that fails is the request's
error (never a 201 for nothing), and a delete removes files only once the row's
delete is committed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.api.test_jobs import jobs_url, upload
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.postgres


@pytest.fixture
def failing_commits(app, client, monkeypatch):
    """A client whose requests' commits fail (as a full disk or a lost database
    would make them); `.stop()` makes commits work again."""

    def commit(self):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    raw = TestClient(app, headers={"X-API-Key": ADMIN_KEY}, raise_server_exceptions=False)
    monkeypatch.setattr(Session, "commit", commit)
    raw.stop = lambda: monkeypatch.undo()
    return raw


def test_a_create_whose_commit_fails_is_not_a_201(client, failing_commits):
    resp = failing_commits.post("/v1/projects", json={"name": "lost"})
    failing_commits.stop()
    assert resp.status_code == 500, resp.text
    assert "request id" in resp.json()["error"]
    assert client.get("/v1/projects").json() == []


def test_an_upload_whose_commit_fails_keeps_no_file(app, client, project, failing_commits):
    resp = failing_commits.post(f"/v1/projects/{project['id']}/datasets",
                                files={"file": ("t.jsonl", b'{"prompt": "a", "completion": "b"}\n',
                                                "application/octet-stream")})
    failing_commits.stop()
    assert resp.status_code == 500
    assert client.get(f"/v1/projects/{project['id']}/datasets").json() == []
    assert app.state.store.list("") == []


@pytest.mark.parametrize("what", ["dataset", "job", "project"])
def test_a_delete_whose_commit_fails_leaves_the_files(app, client, project, what,
                                                      monkeypatch):
    ds = upload(client, project["id"])
    job = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                               "train_dataset_id": ds}).json()["id"]
    url = {"dataset": f"/v1/projects/{project['id']}/datasets/{ds}",
           "job": f"{jobs_url(project)}/{job}",
           "project": f"/v1/projects/{project['id']}"}[what]
    if what == "job":  # a job's files: put one where its artifacts live
        from tuneyard.db import session_scope
        from tuneyard.storage import keys
        from tuneyard.tables import TrainingJob

        with session_scope(app.state.engine) as session:
            prefix = keys.job_prefix(session.get(TrainingJob, job))
        app.state.store.put(prefix + "log.txt", b"x")
    if what == "dataset":  # a dataset in use by a job is kept: delete the job's row first
        client.delete(f"{jobs_url(project)}/{job}")
    before = sorted(app.state.store.list(""))
    assert before

    def commit(self):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    raw = TestClient(app, headers={"X-API-Key": ADMIN_KEY}, raise_server_exceptions=False)
    monkeypatch.setattr(Session, "commit", commit)
    resp = raw.delete(url)
    monkeypatch.undo()
    assert resp.status_code == 500, resp.text
    assert sorted(app.state.store.list("")) == before
    assert client.get(url).status_code == 200
    assert client.delete(url).status_code == 204  # and a delete that commits does remove them
    assert sorted(app.state.store.list("")) != before
