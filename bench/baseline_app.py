"""The baseline server of P4: a bare FastAPI route returning fixed bytes.

Served by uvicorn exactly as `tuneyard serve` serves tuneyard (same uvicorn,
same defaults, access log on); the body is what tuneyard answered for the
same URL (`BENCH_BODY_FILE`). No database, no auth, no models: the floor the
framework sets.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response

BODY = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/v1/projects/{project_id}/training-jobs/{training_job_id}/checkpoints")
async def checkpoints(project_id: str, training_job_id: str) -> Response:
    return Response(BODY, media_type="application/json")
