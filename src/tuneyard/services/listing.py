"""The checkpoint listing of a job, served from cached JSON bytes.

Building it is all Python: the ORM rows (with their JSON columns), three
signed URLs per checkpoint, a pydantic model each. A client watching a job
asks for it again and again while nothing changed, so the serialized bytes
are kept per job, keyed by:

- the job's `checkpoints_version`, which the database bumps in the same
  transaction as any change to one of its checkpoint rows
  (tuneyard.checkpoint_versions), whichever process made it; the request
  reads the job row anyway (to authorise it), so checking costs nothing;
- the URLs' expiry bucket: the URLs in cached bytes are signed to expire at
  the end of the current bucket plus the full TTL, so every URL handed out is
  valid for at least the TTL, and the bytes are re-signed when the bucket
  turns (every TTL/10, at most 10 minutes).

The cache is per process, bounded (least recently used jobs leave first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from pydantic import TypeAdapter
from sqlalchemy.orm import Session, load_only

from tuneyard.config import Settings
from tuneyard.errors import NotFound
from tuneyard.schemas import TrainingJobCheckpoint
from tuneyard.services import jobs as job_service
from tuneyard.services.views import checkpoint_view
from tuneyard.tables import Project, TrainingJob

MAX_JOBS = 512
"""Listings kept per process."""
MAX_BUCKET_SECONDS = 600

_LIST = TypeAdapter(list[TrainingJobCheckpoint])
_cache: OrderedDict[tuple, tuple[tuple, bytes]] = OrderedDict()
_lock = threading.Lock()


def bucket_seconds(settings: Settings) -> int:
    return max(1, min(MAX_BUCKET_SECONDS, settings.download_url_ttl_seconds // 10))


def expiry(settings: Settings, now: float) -> tuple[int, int]:
    """(bucket, expires_at) for URLs signed at `now`: at least the TTL from now."""
    size = bucket_seconds(settings)
    bucket = int(now) // size
    return bucket, (bucket + 1) * size + settings.download_url_ttl_seconds


def listed_job(*, session: Session, project: Project, job_id: str) -> TrainingJob:
    """The job (as services.jobs.get_job finds it: in `project`, else 404), loading
    only what the listing needs: not its loss curve and other JSON columns, which
    cost more to load than the cached listing costs to send."""
    job = session.get(TrainingJob, job_id, options=[load_only(
        TrainingJob.id, TrainingJob.project_id, TrainingJob.checkpoints_version)])
    if job is None or job.project_id != project.id:
        raise NotFound(f"training job {job_id!r} not found in project {project.id!r}")
    return job


def checkpoints_json(*, session: Session, settings: Settings, job: TrainingJob,
                     now: float | None = None) -> bytes:
    """The listing's response body (a JSON array of TrainingJobCheckpoint)."""
    bucket, expires_at = expiry(settings, time.time() if now is None else now)
    where = (str(session.get_bind().url), settings.public_url, job.id)
    version = (job.checkpoints_version, bucket)
    with _lock:
        hit = _cache.get(where)
        if hit is not None and hit[0] == version:
            _cache.move_to_end(where)
            return hit[1]
    rows = job_service.list_checkpoints(session=session, job=job)
    body = _LIST.dump_json([checkpoint_view(settings, job, row, expires_at) for row in rows])
    with _lock:
        _cache[where] = (version, body)
        _cache.move_to_end(where)
        while len(_cache) > MAX_JOBS:
            _cache.popitem(last=False)
    return body


def clear() -> None:
    with _lock:
        _cache.clear()
