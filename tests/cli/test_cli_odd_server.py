"""A server that answers oddly (a proxy's HTML error page, a body of the wrong
shape) still gets one clear error line, never a traceback."""

from __future__ import annotations

import http.server
import threading

import pytest
from typer.testing import CliRunner

from tuneyard.cli import app

ANSWERS = {
    "/v1/projects": (200, "application/json", b'[{"name": "no id here"}]'),
    "/v1/models": (502, "text/html", b"<html><body>502 Bad Gateway</body></html>\n"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        status, kind, body = ANSWERS.get(self.path, (404, "text/plain", b"nothing"))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def odd_url():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(odd_url, tmp_path, *args):
    env = {"TUNEYARD_URL": odd_url, "TUNEYARD_API_KEY": "k", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_wrong_shape(odd_url, tmp_path):
    line = run(odd_url, tmp_path, "projects", "list")
    assert "unexpected response" in line and "id" in line


def test_html_error_page(odd_url, tmp_path):
    line = run(odd_url, tmp_path, "models", "list")
    assert "502 Bad Gateway" in line and "HTTP 502" in line
