"""A real `tuneyard serve` on S3 (SeaweedFS, real signatures): upload, train the tiny
model, list and download a checkpoint through its presigned URL, delete, and the
bucket holds no stray objects. The same server logs JSON lines and its /metrics
shows what its training and evaluation processes measured."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time

import httpx
import pytest

from tests.e2e.server import start_server
from tests.worker.conftest import PATTERN
from tuneyard.client import TuneyardClient

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]


@pytest.fixture(scope="module")
def s3_live(s3_server, tmp_path_factory):
    """A server whose every artifact lives in its own bucket, under a prefix."""
    from tests.conftest import _postgres_url, _reset_postgres

    if _postgres_url():
        _reset_postgres(_postgres_url())  # no other module's Pending jobs
    bucket = s3_server.new_bucket()
    env = s3_server.env | {"TUNEYARD_STORAGE_URL": f"s3://{bucket}/tuneyard",
                           "TUNEYARD_HEARTBEAT_SECONDS": "1", "TUNEYARD_WORKER_POLL_SECONDS": "0.2",
                           "TUNEYARD_LOG_FORMAT": "json"}
    try:
        server = start_server(tmp_path_factory.mktemp("s3-home"), extra_env=env)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server, bucket
    server.stop()


@pytest.fixture
def client(s3_live):
    with TuneyardClient(s3_live[0].url, s3_live[0].key) as client:
        yield client


def test_train_download_delete_on_s3(s3_live, s3_server, client, tmp_path):
    server, bucket = s3_live
    project = client.projects.create("s3")
    data = tmp_path / "pattern.jsonl"
    data.write_bytes(PATTERN)
    dataset = client.datasets.upload(project.id, data, name="pattern")
    assert any(key.endswith("/pattern.jsonl") for key in s3_server.keys(bucket))

    job = client.jobs.create(project.id, base_model="tuneyard-tiny-lm",
                             train_dataset_id=dataset.id, train_test_split_ratio=0.2,
                             parameters={"num_train_epochs": 1, "learning_rate": 0.003,
                                         "per_device_train_batch_size": 8,
                                         "max_seq_length": 64, "eval_generate_samples": 2,
                                         "logging_steps": 1})
    job = client.jobs.wait(project.id, job.id, poll_s=0.5, timeout_s=240)
    assert job.status == "Success", job
    deadline = time.monotonic() + 120
    while True:
        checkpoints = client.jobs.checkpoints(project.id, job.id)
        if all(c.evaluated for c in checkpoints):
            break
        assert time.monotonic() < deadline, checkpoints
        time.sleep(0.5)
    assert [c.checkpoint for c in checkpoints] == [1]

    # The URL is presigned S3, expiring; the download resumes with Range.
    last = checkpoints[-1]
    url = last.model_download_url
    assert url.startswith(s3_server.endpoint + f"/{bucket}/tuneyard/projects/")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=" in url
    head = httpx.get(url, headers={"Range": "bytes=0-511"})
    assert head.status_code == 206 and len(head.content) == 512
    result = client.jobs.download_checkpoint(project.id, job.id, last.checkpoint,
                                             tmp_path / "ckpt.tar")
    digest = hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.verified and digest == last.archive_sha256
    assert head.content == result.path.read_bytes()[:512]
    with tarfile.open(result.path) as tar:
        assert "checkpoint.json" in tar.getnames()
    bad = httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert bad.status_code == 403  # real signatures

    # Metrics from the worker's children (forked training and evaluation processes).
    from prometheus_client.parser import text_string_to_metric_families

    samples = {s.name: s.value for f in text_string_to_metric_families(
        httpx.get(server.url + "/metrics").text) for s in f.samples if not s.labels
        or s.labels.get("target") == "checkpoint"}
    assert samples["tuneyard_job_claims_total"] >= 1
    assert samples["tuneyard_checkpoint_publish_duration_seconds_count"] == 1
    assert samples["tuneyard_evaluation_duration_seconds_count"] == 1
    assert samples["tuneyard_training_steps_total"] >= 1
    # JSON lines naming the job, from the server and from the training process.
    server_lines = [json.loads(line) for line in server.stderr_path.read_text().splitlines()]
    assert any(line.get("job_id") == job.id for line in server_lines)
    child_lines = [json.loads(line) for line in
                   (server.home / "logs" / f"{job.id}.log").read_text().splitlines()
                   if line.startswith("{")]
    assert child_lines and all(line["job_id"] == job.id for line in child_lines)

    job_keys = [k for k in s3_server.keys(bucket) if f"/jobs/{job.id}/" in k]
    assert any(k.endswith("/checkpoints/000001/checkpoint.json") for k in job_keys)
    assert any(k.endswith("/checkpoints/000001.tar") for k in job_keys)
    client.jobs.delete(project.id, job.id)
    assert not [k for k in s3_server.keys(bucket) if f"/jobs/{job.id}/" in k]
    client.projects.delete(project.id)
    assert s3_server.keys(bucket) == []  # no stray objects
