"""`tuneyard serve` and `tuneyard worker` refuse an unusable S3 store at start, in one line."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_serve_refuses_wrong_s3_credentials(cli, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    env = s3_server.env | {"AWS_SECRET_ACCESS_KEY": "wrong-secret",
                           "TUNEYARD_HOME": str(tmp_path / "home"),
                           "TUNEYARD_STORAGE_URL": f"s3://{bucket}/artifacts"}
    run = cli.fails("serve", "--port", "1", env=env)  # refused before it would listen
    assert "S3 refused the credentials" in run.err and bucket in run.err


def test_worker_refuses_a_missing_bucket(cli, s3_server, tmp_path):
    env = s3_server.env | {"TUNEYARD_HOME": str(tmp_path / "home"),
                           "TUNEYARD_STORAGE_URL": "s3://no-such-bucket/artifacts"}
    run = cli.fails("worker", env=env, timeout=60)
    assert "bucket 'no-such-bucket' does not exist" in run.err
