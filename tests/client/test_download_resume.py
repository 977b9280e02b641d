"""Resumable, verified downloads, cut halfway for real.

`CuttingProxy` sits between the client and the real server: it forwards each
`GET /v1/files/...` (with its Range header) and, for the first `cuts`
requests, closes the connection after `cut_after` bytes of the body, the
way a dropped network connection would.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tuneyard.client import ChecksumMismatch, TuneyardConnectionError
from tuneyard.client.transfer import download

from .conftest import write_jsonl

pytestmark = pytest.mark.slow


class CuttingProxy:
    def __init__(self, upstream: str, *, cut_after: int, cuts: int = 1):
        self.upstream = upstream
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.ranges: list[str | None] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the stdlib's name
                range_header = self.headers.get("Range")
                proxy.ranges.append(range_header)
                headers = {"Range": range_header} if range_header else {}
                with httpx.stream("GET", proxy.upstream + self.path, headers=headers) as up:
                    self.send_response(up.status_code)
                    for name, value in up.headers.items():
                        if name.lower() not in ("transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.end_headers()
                    cut = proxy.cuts_left > 0
                    proxy.cuts_left -= 1
                    sent = 0
                    for chunk in up.iter_raw(8192):
                        if cut and sent + len(chunk) > proxy.cut_after:
                            self.wfile.write(chunk[: proxy.cut_after - sent])
                            self.wfile.flush()
                            self.close_connection = True
                            return  # the connection drops mid-body
                        self.wfile.write(chunk)
                        sent += len(chunk)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return self.url + parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def uploaded(api, project, tmp_path):
    """A ~1.2 MB dataset on the server: (its detail, the local file's bytes)."""
    rows = [{"prompt": f"row {i} " + "z" * 100, "completion": f"c{i}"} for i in range(10_000)]
    path = write_jsonl(tmp_path / "src.jsonl", rows)
    dataset = api.datasets.upload(project.id, path)
    return api.datasets.get(project.id, dataset.id), path.read_bytes()


def test_resume_from_a_half_written_part_file(api, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    half = len(data) // 2
    (tmp_path / "copy.jsonl.part").write_bytes(data[:half])
    progress: list[int] = []

    result = api.download(detail.dataset_download_url, dest,
                          progress=lambda done, total: progress.append(done))

    assert result.resumed_from == half
    assert result.verified and result.sha256 == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    assert not (tmp_path / "copy.jsonl.part").exists()
    assert progress[0] == half and progress[-1] == len(data)


def test_cut_connection_then_resume_with_range(api, server, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    part = tmp_path / "copy.jsonl.part"
    with CuttingProxy(server.url, cut_after=len(data) // 3) as proxy:
        url = proxy.rewrite(detail.dataset_download_url)
        with pytest.raises(TuneyardConnectionError):
            download(api.http, url, dest, retries=0)
        assert not dest.exists()
        kept = part.stat().st_size
        assert 0 < kept <= len(data) // 3

        result = download(api.http, url, dest, retries=0)

    assert proxy.ranges == [None, f"bytes={kept}-"]
    assert result.resumed_from == kept and result.verified
    assert dest.read_bytes() == data and not part.exists()


def test_retries_resume_within_one_call(api, server, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    with CuttingProxy(server.url, cut_after=len(data) // 4, cuts=2) as proxy:
        result = download(api.http, proxy.rewrite(detail.dataset_download_url), dest,
                          retries=3, backoff_s=0.01)
    assert len(proxy.ranges) == 3 and proxy.ranges[0] is None
    assert all(r and r.startswith("bytes=") for r in proxy.ranges[1:])
    assert result.verified and dest.read_bytes() == data


def test_corrupt_part_file_fails_the_checksum_and_is_removed(api, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    part = tmp_path / "copy.jsonl.part"
    part.write_bytes(b"#" * 1000)  # not what the server holds
    with pytest.raises(ChecksumMismatch):
        api.download(detail.dataset_download_url, dest)
    assert not part.exists() and not dest.exists()
    # The next attempt starts over and succeeds.
    assert api.download(detail.dataset_download_url, dest).verified
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_without_refetching(api, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    (tmp_path / "copy.jsonl.part").write_bytes(data)  # died just before the rename
    result = api.download(detail.dataset_download_url, dest)
    assert result.verified and result.resumed_from == len(data)
    assert dest.read_bytes() == data


def test_existing_file_with_the_right_sha_is_kept(api, uploaded, tmp_path):
    detail, data = uploaded
    dest = tmp_path / "copy.jsonl"
    dest.write_bytes(data)
    result = api.download(detail.dataset_download_url, dest,
                          sha256=hashlib.sha256(data).hexdigest())
    assert result.verified and result.size == len(data)


def test_expected_sha_from_the_caller_wins(api, uploaded, tmp_path):
    detail, _ = uploaded
    with pytest.raises(ChecksumMismatch):
        api.download(detail.dataset_download_url, tmp_path / "x", sha256="0" * 64)
    assert not Path(tmp_path / "x.part").exists()

