"""Prometheus metrics: what each process measures, and how one scrape sees them all.

Three sources end up in one exposition (`GET /metrics` on every API replica,
`tuneyard worker --metrics-port` on a standalone worker):

- In-process metrics of this process (`METRICS`): request latencies by route
  template and status, claims, deployment loads and their durations.
- Metrics of this process's children (training and evaluation processes):
  checkpoint publish and evaluation durations, training steps (counted at
  each logging step, so `rate()` gives steps per second). A child cannot
  share memory with its worker, so it writes them with prometheus_client's
  multiprocess mode into a folder its worker made (`children_dir()`, passed as
  `PROMETHEUS_MULTIPROC_DIR`), and the worker's scrape reads that folder. A
  finished child's counts stay there, so nothing is lost when it exits.
- Gauges read from the database at scrape time (`DatabaseCollector`): queue
  depth by status, running jobs, deployments by status. These describe the
  whole installation, so every replica reports the same values: aggregate
  them with `max`, not `sum`, across replicas.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a fast API call to a long model load or evaluation.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LONG_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _ProcessMetrics:
    """The metrics this process itself updates (created once per process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "tuneyard_http_request_duration_seconds",
            "API request latency by method, route template and status code.",
            ["method", "route", "status"], buckets=_LATENCY_BUCKETS, registry=r)
        self.claims = Counter("tuneyard_job_claims",
                              "Jobs claimed by this process's workers.", registry=r)
        self.claim_seconds = Histogram("tuneyard_job_claim_duration_seconds",
                                       "Time one claim query took (found a job or not).",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.deployment_loads = Counter(
            "tuneyard_deployment_loads", "Deployment loads by outcome (loaded, failed).",
            ["outcome"], registry=r)
        self.deployment_load_seconds = Histogram(
            "tuneyard_deployment_load_duration_seconds",
            "Time from starting a deployment's load to its model server answering.",
            buckets=_LONG_BUCKETS, registry=r)
        self.leader = Counter(
            "tuneyard_deployment_lease_acquired",
            "Times this replica took the deployment-lifecycle lease.", registry=r)


METRICS = _ProcessMetrics()
_children_dir: str | None = None
_children_lock = threading.Lock()


def children_dir() -> str:
    """This process's folder for its children's metrics (made on first use,
    removed at exit); pass it to children as `PROMETHEUS_MULTIPROC_DIR`."""
    global _children_dir
    with _children_lock:
        if _children_dir is None:
            _children_dir = tempfile.mkdtemp(prefix="tuneyard-metrics-")
            atexit.register(shutil.rmtree, _children_dir, True)
        return _children_dir


def child_env() -> dict[str, str]:
    return {MULTIPROC_ENV: children_dir()}


# -- in a child process ------------------------------------------------------
_child_metrics: dict[str, object] = {}
_child_lock = threading.Lock()


def _child_metric(kind: type, name: str, doc: str, **kwargs):
    """A metric written to the worker's folder, or None outside a worker's child.

    The training and evaluation processes are forked from a server that may have
    imported prometheus_client before this child's environment named the folder,
    so the value class is chosen again here.
    """
    if not os.environ.get(MULTIPROC_ENV):
        return None
    with _child_lock:
        if name not in _child_metrics:
            from prometheus_client import values

            values.ValueClass = values.get_value_class()
            _child_metrics[name] = kind(name, doc, registry=None, **kwargs)
        return _child_metrics[name]


def observe_checkpoint_publish(seconds: float) -> None:
    """A checkpoint was published (uploaded, archived, recorded) in `seconds`."""
    histogram = _child_metric(Histogram, "tuneyard_checkpoint_publish_duration_seconds",
                              "Time to publish one checkpoint: upload, archive, DB row.",
                              buckets=_LONG_BUCKETS)
    if histogram is not None:
        histogram.observe(seconds)


def observe_evaluation(seconds: float, *, target: str) -> None:
    """One evaluation (`target`: 'baseline' or 'checkpoint') took `seconds`."""
    histogram = _child_metric(Histogram, "tuneyard_evaluation_duration_seconds",
                              "Time to evaluate the baseline or one checkpoint.",
                              labelnames=["target"], buckets=_LONG_BUCKETS)
    if histogram is not None:
        histogram.labels(target=target).observe(seconds)


def count_training_steps(steps: int = 1) -> None:
    counter = _child_metric(Counter, "tuneyard_training_steps",
                            "Optimizer steps taken by training processes "
                            "(rate() of it is steps per second).")
    if counter is not None:
        counter.inc(steps)


# -- exposition --------------------------------------------------------------
class ChildrenCollector(Collector):
    """The metrics this process's children wrote to `children_dir()`."""

    def collect(self) -> Iterator:
        if _children_dir is None or not os.path.isdir(_children_dir):
            return iter(())
        from prometheus_client.multiprocess import MultiProcessCollector

        return iter(MultiProcessCollector(None, path=_children_dir).collect())


class DatabaseCollector(Collector):
    """Queue depth and deployments, counted in the database when scraped."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator:
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from tuneyard.status import DeploymentStatus, JobStatus
        from tuneyard.tables import Deployment, TrainingJob

        started = time.perf_counter()
        with Session(self.engine) as session:
            jobs = dict(session.execute(select(TrainingJob.status, func.count())
                                        .group_by(TrainingJob.status)).all())
            deployments = dict(session.execute(select(Deployment.status, func.count())
                                               .group_by(Deployment.status)).all())
            loaded = session.scalar(select(func.count()).select_from(Deployment)
                                    .where(Deployment.loaded.is_(True)))
        queue = GaugeMetricFamily("tuneyard_jobs", "Training jobs by status (from the database).",
                                  labels=["status"])
        for status in JobStatus:
            queue.add_metric([status.value], jobs.get(status.value, 0))
        yield queue
        yield GaugeMetricFamily("tuneyard_jobs_running", "Training jobs running now.",
                                value=jobs.get(JobStatus.RUNNING.value, 0))
        yield GaugeMetricFamily("tuneyard_jobs_queued", "Training jobs waiting for a worker.",
                                value=jobs.get(JobStatus.PENDING.value, 0))
        family = GaugeMetricFamily("tuneyard_deployments", "Deployments by status.",
                                   labels=["status"])
        for status in DeploymentStatus:
            family.add_metric([status.value], deployments.get(status.value, 0))
        yield family
        yield GaugeMetricFamily("tuneyard_deployments_loaded",
                                "Deployments with a model server running.", value=loaded or 0)
        yield GaugeMetricFamily("tuneyard_metrics_database_seconds",
                                "Time the database queries of this scrape took.",
                                value=time.perf_counter() - started)


def exposition_registry(engine=None) -> CollectorRegistry:
    """A registry holding all three sources (the database only when `engine` is given)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(METRICS.registry))
    registry.register(ChildrenCollector())
    if engine is not None:
        registry.register(DatabaseCollector(engine))
    return registry


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator:
        return self.registry.collect()


def serve_metrics(port: int, *, host: str = "0.0.0.0", engine=None):
    """Expose the metrics on `http://host:port/metrics` from a background thread;
    returns the HTTP server (`shutdown()` stops it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=exposition_registry(engine))
    return server
