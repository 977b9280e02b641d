"""Job events over the real app (no worker: jobs stay Pending or Paused), and
pause/resume of a job that has not started. Training's own events (claimed,
started, metrics, checkpoints, status) are checked end to end in
tests/e2e/test_openai_fine_tuning.py."""

from __future__ import annotations

import pytest

from tests.api.test_jobs import jobs_url, upload

pytestmark = pytest.mark.postgres


@pytest.fixture
def job(client, project):
    train_id = upload(client, project["id"])
    resp = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                                "train_dataset_id": train_id})
    assert resp.status_code == 201, resp.text
    return resp.json()


def events(client, project, job, **params):
    resp = client.get(f"{jobs_url(project)}/{job['id']}/events", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_events_record_creation_pause_resume_cancel_in_order(client, project, job):
    url = f"{jobs_url(project)}/{job['id']}"
    assert client.post(url + "/pause").status_code == 204
    assert client.get(url).json()["status"] == "Paused"
    assert client.post(url + "/pause").status_code == 204  # already paused: no change
    assert client.post(url + "/resume").status_code == 204
    assert client.get(url).json()["status"] == "Pending"
    resumed_again = client.post(url + "/resume")
    assert resumed_again.status_code == 400 and "only a paused job" in resumed_again.json()["error"]
    assert client.post(url + "/cancel").status_code == 204

    listed = events(client, project, job)
    assert [e["kind"] for e in listed] == ["created", "status", "status", "status"]
    assert "tuneyard-tiny-lm" in listed[0]["message"]
    assert [e["message"] for e in listed[1:]] == [
        "job paused (it had not started)",
        "job resumed: queued to continue from its latest checkpoint", "job cancelled"]
    assert [e["id"] for e in listed] == sorted(e["id"] for e in listed)

    first, rest = events(client, project, job, limit=1), events(client, project, job,
                                                                   after=listed[0]["id"])
    assert first == listed[:1] and rest == listed[1:]
    # A cancelled job can be neither paused nor resumed.
    assert client.post(url + "/pause").status_code == 400


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 100000}, {"after": -1},
                                    {"after": "x"}])
def test_bad_paging_is_400(client, project, job, params):
    resp = client.get(f"{jobs_url(project)}/{job['id']}/events", params=params)
    assert resp.status_code == 400
    assert list(params)[0] in resp.json()["error"]


def test_events_of_another_users_job_are_404(other_user, project, job):
    assert other_user.get(f"{jobs_url(project)}/{job['id']}/events").status_code == 404
