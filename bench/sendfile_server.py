"""A minimal sendfile(2) HTTP file server: P5's baseline where nginx is not
installed (`make bench` installs nginx; the smoke test may run without it).

    python -m bench.sendfile_server ROOT PORT
"""

from __future__ import annotations

import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path


def handler_for(root: Path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = (root / self.path.lstrip("/").split("?")[0]).resolve()
            if root not in path.parents or not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as fh:
                offset = 0
                while offset < size:
                    sent = os.sendfile(self.connection.fileno(), fh.fileno(), offset,
                                       size - offset)
                    if sent == 0:
                        break
                    offset += sent

    return Handler


def main(root: str, port: str) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", int(port)),
                                         handler_for(Path(root).resolve())) as server:
        server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
