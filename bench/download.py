"""P5: checkpoint archive download throughput (1 GiB) through the signed URL a
checkpoint listing hands out (`GET /v1/files/<token>` of `tuneyard serve`),
against nginx serving the same file on loopback (sendfile on).

The archive is stored with the store's own `put`, recorded on a checkpoint
row, and its `model_download_url` read from the API, as a client does. Each
server is pinned to one core and curl (writing to /dev/null) to the other;
the file is read once first so both serve it from the page cache. Rounds
alternate; the best round of each counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from bench.common import (
    Process,
    Result,
    cpu_split,
    free_port,
    load_average,
    median,
    pinned,
    scratch_dir,
    wait_http,
)
from bench.fixtures import (
    BENCH_KEY,
    add_project,
    bulk_insert,
    checkpoint_row,
    job_row,
    open_db,
    seed_owner,
    sqlite_url,
    tuneyard_server,
)

NGINX_CONF = """\
worker_processes 1;
daemon off;
{user}
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def _chunks(size: int):
    block = os.urandom(1 << 20)
    for i in range(size // len(block)):
        # Vary every block a little: no layer below can dedupe or compress it away.
        yield i.to_bytes(8, "little") + block[8:]


def seed(home: Path, size: int) -> tuple[str, Path, str]:
    """(checkpoints list path, the archive's file, its sha256)."""
    from tuneyard.storage.local import LocalStore
    from tuneyard.tables import Checkpoint, TrainingJob

    engine = open_db(sqlite_url(home))
    store = LocalStore(home / "artifacts")
    with Session(engine, expire_on_commit=False) as session:
        owner = seed_owner(session)
        project = add_project(session, owner)
        job = job_row(project.id, owner.id, name="p5")
        row = checkpoint_row(job["id"], project.id, 1, archive_size=size, with_results=False)
        info = store.put(row["archive_key"], _chunks(size))
        row["archive_sha256"], row["archive_size"] = info.sha256, info.size
        bulk_insert(session, TrainingJob, [job])
        bulk_insert(session, Checkpoint, [row])
        session.commit()
        path = f"/v1/projects/{project.id}/training-jobs/{job['id']}/checkpoints"
    engine.dispose()
    return path, store.local_path(row["archive_key"]), info.sha256


def download(url: str, *, cpus: str | None, expect: int) -> float:
    """Seconds to fetch `url` whole (curl into /dev/null)."""
    if shutil.which("curl"):
        done = subprocess.run(
            pinned(["curl", "-sS", "-f", "-o", "/dev/null", "-w",
                    "%{size_download} %{time_total}", url], cpus),
            capture_output=True, text=True, check=True)
        size, seconds = done.stdout.split()
        got = int(float(size))
        total = float(seconds)
    else:  # pragma: no cover - curl is everywhere the bench runs
        got, start = 0, time.perf_counter()
        with httpx.stream("GET", url, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1 << 20):
                got += len(chunk)
        total = time.perf_counter() - start
    if got != expect:
        raise RuntimeError(f"{url}: got {got} bytes, expected {expect}")
    return total


def start_baseline(root: Path, work: Path, *, cpus: str | None, log_dir: Path) -> tuple:
    """(process, URL prefix, name): nginx when installed, else the sendfile server."""
    port = free_port()
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if nginx:
        conf_dir = work / "nginx"
        conf_dir.mkdir()
        # Running as root, nginx's workers would drop to nobody, who cannot read a
        # private temp dir: keep them as the user that owns the files.
        user = "user root;" if os.geteuid() == 0 else ""
        (conf_dir / "nginx.conf").write_text(NGINX_CONF.format(
            user=user, dir=conf_dir, port=port, root=root))
        argv = [nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")]
        name = "nginx"
    else:
        argv = [sys.executable, "-m", "bench.sendfile_server", str(root), str(port)]
        name = "sendfile server (nginx not installed)"
    proc = Process(pinned(argv, cpus), log_path=log_dir / "p5-baseline.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc)
    except BaseException:
        proc.stop()
        raise
    return proc, url, name


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    size = (64 if quick else 1024) << 20
    rounds = 1 if quick else 3
    server_cpus, client_cpus = cpu_split()
    home = scratch_dir("p5")
    try:
        path, archive, sha256 = seed(home, size)
        served = home / "nginx-root"
        served.mkdir()
        os.link(archive, served / "archive.tar")  # the same file, the same page cache
        (served / "healthz").write_text("ok\n")
        with tuneyard_server(home, log_path=log_dir / "p5-tuneyard.log",
                             cpus=server_cpus) as server:
            url = server.url
            listing = httpx.get(url + path, headers={"X-API-Key": BENCH_KEY}, timeout=60)
            listing.raise_for_status()
            signed = listing.json()[0]["model_download_url"]
            head = httpx.get(signed, headers={"Range": "bytes=0-0"}, timeout=60)
            assert head.headers.get("x-checksum-sha256") == sha256, head.headers
            proc, base_url, base_name = start_baseline(served, home, cpus=server_cpus,
                                                       log_dir=log_dir)
            try:
                with open(archive, "rb") as fh:  # into the page cache, for both
                    while fh.read(1 << 24):
                        pass
                times: dict[str, list[float]] = {"tuneyard": [], "baseline": []}
                for _ in range(rounds):
                    times["baseline"].append(download(f"{base_url}/archive.tar",
                                                      cpus=client_cpus, expect=size))
                    times["tuneyard"].append(download(signed, cpus=client_cpus, expect=size))
            finally:
                proc.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    mb = size / 1e6
    ty, base = mb / median(times["tuneyard"]), mb / median(times["baseline"])
    # Each round downloads from the baseline, then through tuneyard.
    paired = median([b / t for b, t in zip(times["baseline"], times["tuneyard"], strict=True)])
    result = Result(
        id="P5", measure=f"archive download, {size >> 20} MiB (MB/s)", unit="MB/s",
        tuneyard=ty, baseline=base, ratio=paired, goal_op=">=", goal=0.8,
        baseline_name=f"{base_name} serving the same file on loopback",
        details={"bytes": size, "rounds": rounds, "seconds": times,
                 "pinned": {"server": server_cpus, "client": client_cpus},
                 "load_average": load_average()},
    )
    result.limits = (
        f"{ty:.0f} MB/s against {base:.0f} MB/s: tuneyard streams the file through "
        "Starlette's StreamingResponse from a sync generator (`LocalStore.open_range`, "
        "1 MiB reads), so every chunk is read on a threadpool thread, copied into Python "
        "and written by uvicorn's h11 protocol, where nginx sendfile()s from the page cache "
        "without a copy. What would close it: serve local objects as files (Starlette's "
        "FileResponse, on an ASGI server with the `http.response.pathsend` extension, which "
        "uvicorn lacks), or have a front proxy send the file after the token check (nginx "
        "`X-Accel-Redirect` to an internal location), or redirect to a presigned URL when "
        "the store is S3; larger chunks (8 MiB) would at least cut the per-chunk hops."
    )
    return [result]
