"""A job's evaluations on a Ray cluster: `python -m tuneyard.worker.ray_evaluate JOB`.

With `TUNEYARD_RAY_ADDRESS` set, the worker spawns this module instead of
`tuneyard.worker.evaluate` and supervises it the same way (time limit,
restarts, stop with the job). This process is only the Ray driver: the
evaluation itself (`evaluate.evaluate_job`: the baseline, then every checkpoint
as it is published) runs as one Ray task with its own resource request
(`TUNEYARD_RAY_EVALUATION_CPUS`, a GPU when the cluster has one), placed by Ray beside training,
not on the worker's host. Ending this process ends the task: Ray cancels the
tasks of a driver that is gone.
"""

from __future__ import annotations

import os
import signal
import sys


def evaluate_remote(job_id: str) -> int:
    """Runs inside the Ray task."""
    from tuneyard.worker.evaluate import evaluate_job

    return evaluate_job(job_id)


def main(job_id: str) -> int:
    import ray

    from tuneyard import logs
    from tuneyard.config import get_settings
    from tuneyard.worker.child import _die_with_parent
    from tuneyard.worker.ray_train import cluster_has_gpus, connect

    _die_with_parent()
    logs.configure()
    logs.set_process_ids(job_id=job_id)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1))
    settings = get_settings()
    connect(settings)
    task = ray.remote(evaluate_remote).options(
        num_cpus=settings.ray_evaluation_cpus, num_gpus=1 if cluster_has_gpus() else 0,
        max_retries=0)
    try:
        return int(ray.get(task.remote(job_id)))
    except ray.exceptions.RayError as exc:
        print(f"job {job_id}: the evaluation task failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
