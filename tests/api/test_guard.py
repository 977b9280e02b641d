"""The request guard: no key means 401 before the body is received; bodies past
their limit are 413, announced or streamed (chunked), and cut while they stream.

The streaming cases call the app as an ASGI server would, with a `receive` that
counts what the app pulled, so "not read" and "cut at the limit" are measured,
not assumed.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import ADMIN_KEY

CHUNK = 64 * 1024


def call(app, method: str, path: str, *, headers: dict[str, str], body_chunks: int,
         chunk: bytes = b"x" * CHUNK) -> tuple[int, dict, int]:
    """(status, JSON body, bytes the app received) for a request whose body is
    `body_chunks` chunks (-1: endless), sent chunked as a proxy would."""
    pulled = {"bytes": 0, "calls": 0}
    sent: list[dict] = []

    async def receive():
        pulled["calls"] += 1
        if body_chunks >= 0 and pulled["calls"] > body_chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled["bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("testserver", 80), "client": ("test", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in
                    {"transfer-encoding": "chunked", **headers}.items()],
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled["bytes"]


def test_no_key_and_malformed_json_is_401(anon, client):
    resp = anon.post("/v1/projects", content=b"{nope",
                     headers={"content-type": "application/json"})
    assert resp.status_code == 401, resp.text
    assert resp.json() == {"status": 401, "error": resp.json()["error"]}
    assert "API key" in resp.json()["error"] and resp.headers["x-request-id"]


def test_bad_key_and_oversized_body_is_401(anon, client):
    resp = anon.post("/v1/projects", content=b"[" * (3 * 1024**2),
                     headers={"content-type": "application/json", "x-api-key": "ty-nope"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid API key"


def test_no_key_endless_streamed_body_is_refused_unread(app, client):
    status, body, pulled = call(app, "POST", "/v1/projects", headers={}, body_chunks=-1)
    assert status == 401 and body["status"] == 401
    assert pulled == 0
    status, body, pulled = call(app, "POST", "/v1/projects/ms-x/datasets",
                                headers={"authorization": "Bearer wrong",
                                         "content-type": "multipart/form-data; boundary=b"},
                                body_chunks=-1)
    assert (status, body["error"], pulled) == (401, "invalid API key", 0)


def test_json_body_over_the_limit_is_413(client, settings, project):
    resp = client.post("/v1/projects", content=b" " * (settings.max_json_bytes + 1),
                       headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text
    assert resp.json()["code"] == "payload_too_large"
    assert "TUNEYARD_MAX_JSON_BYTES" in resp.json()["error"]
    assert [p["id"] for p in client.get("/v1/projects").json()] == [project["id"]]


def test_streamed_json_body_is_cut_at_the_limit(app, client, settings):
    settings.max_json_bytes = 256 * 1024
    status, body, pulled = call(app, "POST", "/v1/projects",
                                headers={"x-api-key": ADMIN_KEY,
                                         "content-type": "application/json"},
                                body_chunks=-1)
    assert status == 413 and "limit of 262144 bytes" in body["error"]
    assert pulled <= settings.max_json_bytes + CHUNK
    assert client.get("/v1/projects").json() == []


def test_streamed_upload_is_cut_at_the_upload_limit(app, client, settings, project):
    from tuneyard.api.guard import MULTIPART_OVERHEAD

    settings.max_upload_bytes = 512 * 1024
    head = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    line = json.dumps({"prompt": "p", "completion": "c"}).encode() + b"\n"
    chunk = head + line * ((CHUNK - len(head)) // len(line))
    status, body, pulled = call(
        app, "POST", f"/v1/projects/{project['id']}/datasets",
        headers={"x-api-key": ADMIN_KEY, "content-type": "multipart/form-data; boundary=b"},
        body_chunks=-1, chunk=chunk)
    assert status == 413, body
    assert "TUNEYARD_MAX_UPLOAD_BYTES" in body["error"]
    assert pulled <= settings.max_upload_bytes + MULTIPART_OVERHEAD + len(chunk)
    assert client.get(f"/v1/projects/{project['id']}/datasets").json() == []
    assert app.state.store.list("") == []


def test_announced_oversized_upload_is_413_unread(app, client, settings, project):
    settings.max_upload_bytes = 1000
    status, body, pulled = call(
        app, "POST", f"/v1/projects/{project['id']}/datasets",
        headers={"x-api-key": ADMIN_KEY, "content-length": str(10**12),
                 "content-type": "multipart/form-data; boundary=b"},
        body_chunks=-1)
    assert (status, pulled) == (413, 0)
    assert body["code"] == "payload_too_large"


def test_requests_within_limits_still_work(client, settings):
    settings.max_json_bytes = 1000
    resp = client.post("/v1/projects", json={"name": "n" * 100})
    assert resp.status_code == 201, resp.text
    assert client.get("/healthz").status_code == 200


def _uvicorn(app):
    """The app under a real uvicorn on a free port, in a thread; (server, port)."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def test_over_a_real_socket_the_refused_body_is_never_read(app, settings):
    """Over HTTP/1.1 with chunked transfer: the 401 and the 413 come back after the
    first chunk, and the server closes the connection instead of reading the rest."""
    import socket

    settings.max_json_bytes = 100_000
    server, thread, port = _uvicorn(app)
    chunk = b"x" * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    try:
        for key_header, status in ((b"", b"401"), (b"X-API-Key: " + ADMIN_KEY.encode()
                                                   + b"\r\n", b"413")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /v1/projects HTTP/1.1\r\nHost: t\r\nContent-Type: "
                             b"application/json\r\nTransfer-Encoding: chunked\r\n" + key_header
                             + b"\r\n" + framed + framed)
                head = sock.recv(65536)
                assert head.startswith(b"HTTP/1.1 " + status), head[:200]
                assert b"connection: close" in head.lower()
                sent = 0
                with pytest.raises(OSError):  # reset or broken pipe: nobody reads any more
                    for _ in range(4096):  # 256 MiB, far beyond any socket buffer
                        sock.sendall(framed)
                        sent += len(chunk)
                assert sent < 64 * 1024**2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
