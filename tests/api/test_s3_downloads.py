"""Download URLs on an S3 store: presigned S3 URLs that expire, with Range; an older
signed `/v1/files/` URL redirects to one. Real app, real SeaweedFS."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import make_settings, serving
from tests.worker.conftest import PATTERN
from tuneyard.storage.signing import make_token


@pytest.fixture
def s3_app(s3_env, tmp_path, database_url):
    settings = make_settings(tmp_path, database_url)
    settings.storage_url = f"s3://{s3_env.new_bucket()}/ty"
    with serving(settings) as (app, client):
        yield settings, client


def test_dataset_download_url_is_presigned_s3(s3_app, s3_env):
    settings, client = s3_app
    project = client.post("/v1/projects", json={"name": "p"}).json()
    created = client.post(f"/v1/projects/{project['id']}/datasets",
                          files={"file": ("pattern.jsonl", PATTERN)}, data={"name": "p"})
    assert created.status_code == 201, created.text
    dataset = client.get(f"/v1/projects/{project['id']}/datasets/{created.json()['id']}").json()
    url = dataset["dataset_download_url"]
    assert url.startswith(s3_env.endpoint + "/") and "X-Amz-Signature=" in url
    assert f"X-Amz-Expires={settings.download_url_ttl_seconds}" in url
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == PATTERN
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == PATTERN[10:20]

    # A signed /v1/files/ URL answers with a redirect to S3, valid for what is left.
    key = url.split("/ty/", 1)[1].split("?", 1)[0]
    token = make_token(key=key, secret=settings.signing_secret(),
                       expires_at=int(time.time()) + 60, filename="p.jsonl")
    redirect = client.get(f"/v1/files/{token}", follow_redirects=False)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(s3_env.endpoint) and "X-Amz-Expires=" in location
    assert int(location.split("X-Amz-Expires=")[1].split("&")[0]) <= 60
    assert httpx.get(location).content == PATTERN
    gone = make_token(key="projects/none/x", secret=settings.signing_secret(),
                      expires_at=int(time.time()) + 60)
    assert client.get(f"/v1/files/{gone}", follow_redirects=False).status_code == 404
