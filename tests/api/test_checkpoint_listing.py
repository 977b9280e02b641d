"""The checkpoint listing is served from cached bytes that follow every change to
the job's checkpoint rows (whoever makes it: ORM objects or bulk statements), and
its signed URLs are re-signed when the expiry bucket turns."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from tuneyard.services import listing
from tuneyard.status import TestStatus
from tuneyard.tables import Checkpoint, TrainingJob
from tuneyard.worker.evaluate import record_failure

pytestmark = pytest.mark.postgres

TRAIN = b'{"prompt": "q", "completion": "a"}\n' * 4


@pytest.fixture
def job_url(client, project):
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": ("t.jsonl", TRAIN)}, data={"name": "t.jsonl"})
    assert resp.status_code == 201, resp.text
    resp = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": resp.json()["id"]})
    assert resp.status_code == 201, resp.text
    return f"/v1/projects/{project['id']}/training-jobs/{resp.json()['id']}"


def _row(job_id: str, number: int) -> Checkpoint:
    return Checkpoint(job_id=job_id, number=number, step=number * 10, epoch=float(number),
                      storage_prefix=f"x/{number}/", archive_key=f"x/{number}.tar",
                      archive_sha256="ab" * 32, archive_size=10)


def test_the_listing_follows_every_change_to_the_rows(app, client, job_url):
    listing.clear()
    job_id = job_url.rsplit("/", 1)[1]
    engine = app.state.engine
    assert client.get(job_url + "/checkpoints").json() == []
    with Session(engine) as session:  # as the worker inserts them, in another session
        session.add_all([_row(job_id, 1), _row(job_id, 2)])
        session.commit()
    first = client.get(job_url + "/checkpoints")
    assert first.headers["content-type"] == "application/json"
    assert [c["checkpoint"] for c in first.json()] == [1, 2]
    assert client.get(job_url + "/checkpoints").content == first.content  # served cached

    with Session(engine) as session:  # an ORM change: the evaluation's result
        row = session.get(Checkpoint, session.query(Checkpoint.id).filter_by(
            job_id=job_id, number=2).scalar())
        row.test_status, row.eval_loss = TestStatus.DONE, 1.25
        row.test_results = {"aggregated_test_result": {"loss": 1.25},
                            "general_test_result_key": "r/2.jsonl"}
        session.commit()
    second = client.get(job_url + "/checkpoints").json()
    assert second[1]["eval_loss"] == 1.25 and second[1]["test_status"] == "done"
    assert second[1]["test_results"]["aggregated_test_result"] == {"loss": "1.25"}
    assert second[1]["test_results"]["general_test_result"].startswith("http")

    with Session(engine) as session:  # a bulk statement, as the worker's loop makes
        session.execute(update(Checkpoint).where(Checkpoint.job_id == job_id,
                                                 Checkpoint.number == 1)
                        .values(pruned=True))
        session.commit()
    third = client.get(job_url + "/checkpoints").json()
    assert third[0]["pruned"] is True and third[0]["model_download_url"] is None

    with Session(engine) as session:  # the evaluation recording a failure
        job = session.get(TrainingJob, job_id)
        row = session.query(Checkpoint).filter_by(job_id=job_id, number=1).one()
        record_failure(session=session, job=job, row=row, message="boom")
        session.commit()
        version = session.get(TrainingJob, job_id).checkpoints_version
    assert client.get(job_url + "/checkpoints").json()[0]["test_error"] == "boom"
    assert version >= 4  # one bump per committed change above


def test_urls_are_re_signed_per_expiry_bucket(app, client, job_url, settings, monkeypatch):
    listing.clear()
    job_id = job_url.rsplit("/", 1)[1]
    with Session(app.state.engine) as session:
        session.add(_row(job_id, 1))
        session.commit()
    size = listing.bucket_seconds(settings)
    start = (10**9 // size) * size
    monkeypatch.setattr(listing.time, "time", lambda: start + 0.5)
    one = client.get(job_url + "/checkpoints").content
    monkeypatch.setattr(listing.time, "time", lambda: start + size - 0.5)
    assert client.get(job_url + "/checkpoints").content == one  # same bucket: same bytes
    monkeypatch.setattr(listing.time, "time", lambda: start + size + 0.5)
    two = client.get(job_url + "/checkpoints").content
    assert two != one
    url = json.loads(two)[0]["model_download_url"]
    assert url != json.loads(one)[0]["model_download_url"]
    # Every URL handed out lives at least the TTL: the bucket's end plus the TTL.
    bucket, expires_at = listing.expiry(settings, start + size + 0.5)
    assert expires_at - (start + size + 0.5) >= settings.download_url_ttl_seconds
