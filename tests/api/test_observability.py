"""`GET /metrics` on the real app: Prometheus text, database gauges, request latencies
by route template; metrics written by a child process show up in the same scrape."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_jobs import jobs_url, upload
from tuneyard import metrics


def scrape(client) -> dict[str, list]:
    resp = client.get("/metrics", headers={"X-API-Key": ""})  # scrapers bring no key
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return {family.name: family.samples for family in text_string_to_metric_families(resp.text)}


def value(samples, name: str | None = None, **labels) -> float:
    found = [s.value for s in samples if (name is None or s.name == name)
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_queue_depth_and_request_latencies(client, project):
    before = scrape(client)
    assert value(before["tuneyard_jobs"], status="Pending") == 0
    train_id = upload(client, project["id"])
    for _ in range(2):
        resp = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                                    "train_dataset_id": train_id})
        assert resp.status_code == 201, resp.text
    assert client.get(f"/v1/projects/{project['id']}").status_code == 200
    assert client.get("/v1/no/such/route").status_code == 404

    after = scrape(client)
    assert value(after["tuneyard_jobs"], status="Pending") == 2
    assert value(after["tuneyard_jobs_queued"]) == 2
    assert value(after["tuneyard_jobs_running"]) == 0
    assert value(after["tuneyard_deployments"], status="Deployed") == 0
    latencies = after["tuneyard_http_request_duration_seconds"]
    # Labelled by template, never by the id in the path.
    template = "/v1/projects/{project_id}/training-jobs"
    assert value(latencies, route=template, status="201", method="POST",
                 name="tuneyard_http_request_duration_seconds_count") >= 2
    assert value(latencies, route="/v1/projects/{project_id}", status="200", method="GET",
                 name="tuneyard_http_request_duration_seconds_count") >= 1
    assert value(latencies, route="unmatched", status="404", method="GET",
                 name="tuneyard_http_request_duration_seconds_count") >= 1
    assert not [s for s in latencies if project["id"] in s.labels.get("route", "")]


def test_a_child_process_metrics_reach_the_scrape(client):
    # As a training process does: prometheus_client already imported (the
    # forkserver preloads it) before the worker's folder is in the environment.
    script = ("import os, prometheus_client\n"
              f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {metrics.children_dir()!r}\n"
              "from tuneyard import metrics\n"
              "metrics.observe_checkpoint_publish(1.5)\n"
              "metrics.observe_evaluation(0.3, target='checkpoint')\n")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    families = scrape(client)
    publish = families["tuneyard_checkpoint_publish_duration_seconds"]
    assert value(publish, name="tuneyard_checkpoint_publish_duration_seconds_sum") >= 1.5
    evaluations = families["tuneyard_evaluation_duration_seconds"]
    assert value(evaluations, target="checkpoint",
                 name="tuneyard_evaluation_duration_seconds_count") >= 1


def test_standalone_worker_metrics_port():
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = metrics.serve_metrics(port, host="127.0.0.1")
    try:
        metrics.METRICS.claims.inc()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"tuneyard_job_claims", "tuneyard_job_claim_duration_seconds"} <= names
    assert "tuneyard_jobs" not in names  # the database gauges are the API's
