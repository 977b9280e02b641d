"""What only the S3 store does, on a real S3 server (SeaweedFS, see tests/seaweed.py):
refusing to start without a usable bucket, multipart uploads, presigned URLs.
The shared contract runs in test_store_contract.py."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from tuneyard.storage import StoreUnavailable, open_store
from tuneyard.storage.s3 import S3Store

MIB = 1024 * 1024


def test_wrong_credentials_are_refused_with_one_clear_line(s3_env, monkeypatch):
    bucket = s3_env.new_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreUnavailable) as caught:
        open_store(f"s3://{bucket}/p")
    message = str(caught.value)
    assert "refused the credentials" in message and bucket in message
    assert "\n" not in message


def test_a_missing_bucket_is_refused(s3_env):
    with pytest.raises(StoreUnavailable, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/p")


def test_an_unreachable_endpoint_is_refused(s3_env, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreUnavailable, match="cannot reach the S3 endpoint"):
        open_store("s3://bucket/p")


@pytest.fixture
def small_parts(s3_server) -> S3Store:
    """A store cutting uploads into 5 MiB parts (the S3 minimum), so tests stay small."""
    return S3Store(s3_server.new_bucket(), "mp", client=s3_server.client(), part_size=5 * MIB)


def _pattern(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def test_large_objects_go_up_as_parallel_multipart_uploads(small_parts):
    data = _pattern(12 * MIB + 123)
    reads = []

    def chunks():  # a stream: the store cannot seek or measure it up front
        for offset in range(0, len(data), MIB // 2):
            reads.append(offset)
            yield data[offset:offset + MIB // 2]

    info = small_parts.put("big/model.safetensors", chunks())
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    head = small_parts.client.head_object(Bucket=small_parts.bucket,
                                          Key="mp/big/model.safetensors")
    assert head["ETag"].endswith('-3"')  # three parts: 5 + 5 + 2 MiB
    assert small_parts.stored_sha256("big/model.safetensors") is None  # known only after
    # Ranges across part boundaries, and the whole object.
    assert b"".join(small_parts.open_range("big/model.safetensors", start=5 * MIB - 7,
                                           end=10 * MIB + 7)) == data[5 * MIB - 7:10 * MIB + 8]
    assert hashlib.sha256(small_parts.read_bytes("big/model.safetensors")).hexdigest() \
        == info.sha256


def test_small_objects_keep_their_sha256_as_metadata(small_parts):
    info = small_parts.put("small", b"tiny object")
    assert small_parts.stored_sha256("small") == info.sha256


def test_a_failed_multipart_upload_leaves_nothing_behind(small_parts):
    small_parts.put("obj", b"the old version")

    def failing():
        yield _pattern(11 * MIB)
        raise RuntimeError("connection to the trainer lost")

    with pytest.raises(RuntimeError, match="trainer lost"):
        small_parts.put("obj", failing())
    assert small_parts.read_bytes("obj") == b"the old version"
    assert small_parts.list() == ["obj"]
    uploads = small_parts.client.list_multipart_uploads(Bucket=small_parts.bucket)
    assert uploads.get("Uploads", []) == []  # aborted, not left to be billed


def test_cleanup_temp_aborts_a_killed_process_s_upload(small_parts):
    client, bucket = small_parts.client, small_parts.bucket
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp/abandoned")
    client.upload_part(Bucket=bucket, Key="mp/abandoned", UploadId=upload["UploadId"],
                       PartNumber=1, Body=b"x" * 100)
    assert small_parts.list() == []  # never listed
    assert small_parts.cleanup_temp() == 0  # younger than the grace period: maybe live
    assert small_parts.cleanup_temp(older_than=0) == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_presigned_urls_serve_ranges_and_expire(small_parts):
    data = _pattern(3 * MIB)
    small_parts.put("ckpt/000001.tar", data)
    url = small_parts.presigned_url("ckpt/000001.tar", expires_in=2, filename="ckpt 1.tar")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=2" in url
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert "ckpt 1.tar" in whole.headers["content-disposition"]
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert httpx.get(url.replace("000001", "000002")).status_code == 403  # signature covers key
    time.sleep(2.5)
    assert httpx.get(url).status_code == 403


def test_uploads_hold_a_bounded_number_of_parts_in_memory(small_parts, monkeypatch):
    import tracemalloc

    from tuneyard.storage import s3

    monkeypatch.setattr(s3, "MAX_CONCURRENCY", 2)
    block = _pattern(MIB)
    tracemalloc.start()
    try:
        info = small_parts.put("stream", (block for _ in range(80)))  # 80 MiB, 16 parts
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 80 * MIB
    assert peak < 50 * MIB, f"{peak / MIB:.0f} MiB held for an 80 MiB upload"
