"""S3 transfer throughput on a local SeaweedFS: the S3 store's streamed multipart
upload against boto3's own `upload_file`, and a download through a presigned URL
(what `model_download_url` is on S3) against a direct boto3 GET.

    python -m bench.s3_transfer [--mib 256]

Both sides of each pair move the same object over the same loopback server in
the same run; the ratio is what matters (this machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import httpx
from tests.seaweed import start_seaweed, stop_seaweed


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:,.0f} MB/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = start_seaweed(folder / "weed")
    try:
        os.environ.update(server.env)
        from tuneyard.storage.s3 import S3Store

        bucket = server.new_bucket()
        store = S3Store(bucket, "bench")
        source = folder / "object.bin"
        with open(source, "wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1024 * 1024))
        size = source.stat().st_size
        expected = hashlib.sha256(source.read_bytes()).hexdigest()

        started = time.perf_counter()
        info = store.put_file("object.bin", source)
        ours_up = time.perf_counter() - started
        assert info.sha256 == expected
        started = time.perf_counter()
        store.client.upload_file(str(source), bucket, "bench/direct.bin")
        boto_up = time.perf_counter() - started

        url = store.presigned_url("object.bin", expires_in=600)
        digest = hashlib.sha256()
        started = time.perf_counter()
        with httpx.stream("GET", url, timeout=120) as response:
            for chunk in response.iter_bytes(1024 * 1024):
                digest.update(chunk)
        presigned = time.perf_counter() - started
        assert digest.hexdigest() == expected
        digest = hashlib.sha256()
        started = time.perf_counter()
        body = store.client.get_object(Bucket=bucket, Key="bench/object.bin")["Body"]
        while chunk := body.read(1024 * 1024):
            digest.update(chunk)
        direct = time.perf_counter() - started
        assert digest.hexdigest() == expected

        print(f"{args.mib} MiB object, SeaweedFS on loopback (downloads hash what they read)")
        print(f"upload:   S3Store.put_file {_rate(size, ours_up)}  vs boto3 upload_file "
              f"{_rate(size, boto_up)}  ratio {boto_up / ours_up:.2f}")
        print(f"download: presigned URL (httpx) {_rate(size, presigned)}  vs boto3 GET "
              f"{_rate(size, direct)}  ratio {direct / presigned:.2f}")
    finally:
        stop_seaweed(server)


if __name__ == "__main__":
    main()
