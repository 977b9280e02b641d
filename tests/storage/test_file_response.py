"""file_response served by a tiny Starlette app through the in-process ASGI client."""

from __future__ import annotations

import hashlib

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tuneyard.storage import CHUNK_SIZE, ArtifactStore, ObjectNotFound
from tuneyard.storage.http import content_disposition, file_response, parse_range

DATA = bytes(range(256)) * (CHUNK_SIZE // 256) + b"0123456789"  # 1 MiB + 10: two chunks
SIZE = len(DATA)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(served_store):
    return served_store


def make_client(store: ArtifactStore, *, filename: str | None = "model.tar", sha256=SHA):
    async def download(request: Request):
        try:
            return file_response(
                store,
                key=request.path_params["key"],
                range_header=request.headers.get("range"),
                filename=filename,
                sha256=sha256,
            )
        except ObjectNotFound:
            return JSONResponse({"status": 404, "error": "not found"}, status_code=404)

    app = Starlette(routes=[Route("/files/{key:path}", download)])
    return TestClient(app)


@pytest.fixture
def client(store):
    store.put("ckpt/model.tar", [DATA])
    with make_client(store) as test_client:
        yield test_client


def get(client, range_header: str | None = None):
    headers = {"range": range_header} if range_header is not None else {}
    return client.get("/files/ckpt/model.tar", headers=headers)


def test_full_download(client):
    response = get(client)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="model.tar"'
    assert response.headers["x-checksum-sha256"] == SHA
    assert response.headers["etag"] == f'"{SHA}"'
    assert "content-range" not in response.headers


def test_optional_headers_are_absent_when_not_given(store):
    store.put("k", [b"abc"])
    with make_client(store, filename=None, sha256=None) as plain:
        response = plain.get("/files/k")
    assert response.status_code == 200 and response.content == b"abc"
    for header in ("content-disposition", "etag", "x-checksum-sha256"):
        assert header not in response.headers


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        (f"bytes={CHUNK_SIZE - 5}-{CHUNK_SIZE + 4}", CHUNK_SIZE - 5, CHUNK_SIZE + 4),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=0-", 0, SIZE - 1),
        (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),
        ("bytes=-10", SIZE - 10, SIZE - 1),
        (f"bytes=-{SIZE + 500}", 0, SIZE - 1),  # longer suffix than the object: all of it
        (f"bytes=5-{SIZE + 1000}", 5, SIZE - 1),  # end past the object is clamped
        ("Bytes=1-2", 1, 2),  # the unit is case-insensitive
    ],
)
def test_single_ranges_get_206(client, header, first, last):
    response = get(client, header)
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{SHA}"'


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_unsatisfiable_ranges_get_416(client, header):
    response = get(client, header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.content == b""


@pytest.mark.parametrize(
    "header",
    ["bytes=5-2", "bytes=abc", "bytes=-", "items=0-1", "bytes 0-1", "0-1", "bytes=0-1,5-6", ""],
)
def test_malformed_and_multi_ranges_are_ignored(client, header):
    response = get(client, header)
    assert response.status_code == 200
    assert response.content == DATA
    assert "content-range" not in response.headers


def test_missing_object_raises_for_the_route_to_map(client, store):
    assert client.get("/files/no/such/key").status_code == 404
    with pytest.raises(ObjectNotFound):
        file_response(store, key="no/such/key", range_header=None, filename=None, sha256=None)


def test_empty_object(store):
    store.put("empty", [])
    with make_client(store, sha256=None) as empty_client:
        full = empty_client.get("/files/empty")
        assert full.status_code == 200 and full.content == b""
        assert full.headers["content-length"] == "0"
        assert empty_client.get("/files/empty", headers={"range": "bytes=0-"}).status_code == 416
        suffix = empty_client.get("/files/empty", headers={"range": "bytes=-5"})
        assert suffix.status_code == 200 and suffix.content == b""


def test_bad_checksum_is_refused(store):
    store.put("k", [b"abc"])
    with pytest.raises(ValueError):
        file_response(store, key="k", range_header=None, filename=None, sha256='x" injected')


def test_content_disposition_escapes_unsafe_filenames():
    assert content_disposition("plain-name.tar") == 'attachment; filename="plain-name.tar"'
    header = content_disposition('chëckpoint "2"\r\nSet-Cookie: x.tar')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="ch_ckpoint _2___Set-Cookie: x.tar"; ')
    assert header.endswith("filename*=UTF-8''ch%C3%ABckpoint%20%222%22%0D%0ASet-Cookie%3A%20x.tar")
    header.encode("latin-1")  # must be sendable as an HTTP header


def test_unicode_filename_survives_the_wire(store):
    store.put("k", [b"abc"])
    with make_client(store, filename="modèle.tar") as unicode_client:
        response = unicode_client.get("/files/k")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"mod_le.tar\"; filename*=UTF-8''mod%C3%A8le.tar"
    )


def test_parse_range_directly():
    assert parse_range(None, size=10) is None
    assert parse_range("bytes=2-4", size=10) == (2, 4)
    assert parse_range("bytes=-3", size=10) == (7, 9)
    assert parse_range(" bytes = 2-", size=10) == (2, 9)
