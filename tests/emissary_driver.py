"""Drive one operation of the real Emissary SDK (emissary-client-sdk==0.4.4).

Runs INSIDE .venv-emissary (the SDK pins pydantic 2.9 / httpx 0.27, so tuneyard never
imports it); the e2e tests start it as a child process:

    .venv-emissary/bin/python tests/emissary_driver.py --server URL [--key KEY] OP [ARGS...]

It prints one JSON document on stdout and exits 0: the parsed response turned into
JSON (``model_dump(mode="json")``, so fields the server did not send appear as null
and fields the SDK does not know are dropped, exactly what an SDK user sees), a list
for list operations, null for 204 operations, or ``{"error": {...}}`` when the SDK
raised one of its error types. It exits non-zero (with a traceback, and the raw HTTP
exchange on stderr) when the SDK could not parse a response: that is the failure the
e2e tests exist to catch. ``python tests/emissary_driver.py --help`` lists the ops.

What the SDK does (read from its generated source; Speakeasy 2.445.1):

* Client: ``EmissaryClient(api_key=KEY, server_url=URL, timeout_ms=...)``. URLs are
  ``server_url.rstrip("/") + path``; path parameters are substituted RAW, never
  percent-encoded (a base model named ``org/name`` becomes two path segments).
  Sub-clients: ``base_models.list/get(base_model_name=)``,
  ``projects.create(request=None|{"name"})/list/get/delete(project_id=)``,
  ``datasets.create(project_id=, request_body={"file": {"file_name", "content"},
  "name"})/list/get/delete(dataset_id=)``,
  ``training_jobs.create(project_id=, request_body=)/list/get/cancel/delete/
  list_checkpoints(training_job_id=)``,
  ``deployments.create/list/get/cancel/delete(deployment_id=)`` and
  ``deployments.completions.create``, ``deployments.chat.completions.create``,
  ``deployments.classification.create``, ``deployments.embeddings.create``
  (``project_id=, deployment_id=, request_body=``).
* Headers on every request: ``X-API-Key: KEY`` (omitted when api_key is None;
  EMISSARY_CLIENT_API_KEY is read only when no security object exists, which never
  happens through EmissaryClient), ``Accept: application/json``,
  ``user-agent: speakeasy-sdk/python 0.4.4 2.445.1 0.1.0 emissary-client-sdk``.
  Requests WITHOUT a body (GET, DELETE, POST .../cancel, create project with no
  argument) still carry ``Content-Type: application/octet-stream`` and an empty body.
  ``projects.create(request={})`` sends ``Content-Type: application/json`` with an
  EMPTY body (an all-unset model serialises to ""). JSON bodies omit None fields.
* Dataset upload: multipart/form-data, file part named ``file`` (filename as given;
  part Content-Type guessed by httpx from the filename, application/octet-stream for
  .jsonl), text part ``name`` only when given.
* Success is matched on the EXACT status and ``application/json`` content type:
  creates need 201, list/get/inference need 200, delete and cancel need 204 (any
  content type, body ignored). Any other 2xx/3xx raises
  ``SDKError("Unexpected response received (code: ...)")``.
* Errors: 400 -> ``APIErrorInvalidInput``, 401 -> ``APIErrorUnauthorized``,
  404 -> ``APIErrorNotFound``, but only on operations whose spec lists that code and
  only with an application/json body; the body must parse as ``{status: int,
  error: str}`` plus ``code: str`` for 404, or pydantic raises ValidationError (an
  unhandled crash for the user). Every other 4XX/5XX -> ``SDKError`` (status_code,
  raw body). Op-specific mapping: list ops map 401 (not 404); get/delete/cancel/
  list_checkpoints map 404; creates map 400; inference maps 400 and 404;
  list_models maps 400 and 401; get_model maps 404.
* Responses: every field of every response model is Optional, extra fields are
  ignored, but present fields are validated (pydantic lax mode): ids/names str;
  timestamps int (created_at/updated_at; a float with a fraction fails); status must
  be one of the enums (jobs: Pending Running Success Failed TimedOut Cancelled;
  deployments: Pending Deploying Deployed Failed Cancelled TimedOut); model type one
  of completion/chat/classification/embeddings; progress int; training_loss
  [{timestamp: float, loss: float}]; hyper_parameters / parameter_template values
  str|float|int (no bool/null/list/dict); aggregated_test_result dict[str, str];
  checkpoint int; embeddings response {id, response: {embeddings: {text1, text2:
  [float]}, cosine_score, manhattan_distance, euclidean_distance}}; completions,
  chat and classification {id, response: str}. A null where the model expects a
  list or nested object is accepted only because the fields are Optional.
* No retries by default; with timeout_ms None the SDK passes timeout=None, i.e. NO
  timeout at all, so this driver always sets one (--timeout-ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import httpx
from emissary_client_sdk import EmissaryClient, models

# op name -> (positional argument names, help). A trailing "?" marks an optional one;
# arguments named "body" are JSON objects.
OPS: dict[str, tuple[tuple[str, ...], str]] = {
    "list_models": ((), "GET /v1/models"),
    "get_model": (("name",), "GET /v1/models/{name}"),
    "create_project": (("name?",), "POST /v1/projects (no argument: no body at all)"),
    "create_project_empty": ((), "POST /v1/projects with request={} (empty JSON body)"),
    "list_projects": ((), "GET /v1/projects"),
    "get_project": (("project_id",), "GET /v1/projects/{id}"),
    "delete_project": (("project_id",), "DELETE /v1/projects/{id}"),
    "create_dataset": (("project_id", "file_path", "name?"), "multipart upload"),
    "list_datasets": (("project_id",), ""),
    "get_dataset": (("project_id", "dataset_id"), ""),
    "delete_dataset": (("project_id", "dataset_id"), ""),
    "create_training_job": (("project_id", "body"), "body: JSON object"),
    "list_training_jobs": (("project_id",), ""),
    "get_training_job": (("project_id", "training_job_id"), ""),
    "cancel_training_job": (("project_id", "training_job_id"), ""),
    "delete_training_job": (("project_id", "training_job_id"), ""),
    "list_checkpoints": (("project_id", "training_job_id"), ""),
    "create_deployment": (("project_id", "body"), "body: JSON object"),
    "list_deployments": (("project_id",), ""),
    "get_deployment": (("project_id", "deployment_id"), ""),
    "cancel_deployment": (("project_id", "deployment_id"), ""),
    "delete_deployment": (("project_id", "deployment_id"), ""),
    "completions": (("project_id", "deployment_id", "body"), "body: JSON object"),
    "chat_completions": (("project_id", "deployment_id", "body"), "body: JSON object"),
    "classification": (("project_id", "deployment_id", "body"), "body: JSON object"),
    "embeddings": (("project_id", "deployment_id", "body"), "body: JSON object"),
}

# Each SDK error type is raised for exactly one HTTP status (see the docstring).
_ERROR_STATUS = {
    models.APIErrorInvalidInput: 400,
    models.APIErrorUnauthorized: 401,
    models.APIErrorNotFound: 404,
}


def _call(client: EmissaryClient, op: str, a: dict[str, Any]) -> Any:
    pid = a.get("project_id")
    if op == "list_models":
        return client.base_models.list()
    if op == "get_model":
        return client.base_models.get(base_model_name=a["name"])
    if op == "create_project":
        request = {"name": a["name"]} if a.get("name") is not None else None
        return client.projects.create(request=request)
    if op == "create_project_empty":
        return client.projects.create(request={})
    if op == "list_projects":
        return client.projects.list()
    if op == "get_project":
        return client.projects.get(project_id=pid)
    if op == "delete_project":
        return client.projects.delete(project_id=pid)
    if op == "create_dataset":
        path = Path(a["file_path"])
        body: dict[str, Any] = {"file": {"file_name": path.name, "content": path.read_bytes()}}
        if a.get("name") is not None:
            body["name"] = a["name"]
        return client.datasets.create(project_id=pid, request_body=body)
    if op == "list_datasets":
        return client.datasets.list(project_id=pid)
    if op == "get_dataset":
        return client.datasets.get(project_id=pid, dataset_id=a["dataset_id"])
    if op == "delete_dataset":
        return client.datasets.delete(project_id=pid, dataset_id=a["dataset_id"])
    if op == "create_training_job":
        return client.training_jobs.create(project_id=pid, request_body=a["body"])
    if op == "list_training_jobs":
        return client.training_jobs.list(project_id=pid)
    job = {"project_id": pid, "training_job_id": a.get("training_job_id")}
    if op == "get_training_job":
        return client.training_jobs.get(**job)
    if op == "cancel_training_job":
        return client.training_jobs.cancel(**job)
    if op == "delete_training_job":
        return client.training_jobs.delete(**job)
    if op == "list_checkpoints":
        return client.training_jobs.list_checkpoints(**job)
    if op == "create_deployment":
        return client.deployments.create(project_id=pid, request_body=a["body"])
    if op == "list_deployments":
        return client.deployments.list(project_id=pid)
    dep = {"project_id": pid, "deployment_id": a.get("deployment_id")}
    if op == "get_deployment":
        return client.deployments.get(**dep)
    if op == "cancel_deployment":
        return client.deployments.cancel(**dep)
    if op == "delete_deployment":
        return client.deployments.delete(**dep)
    inference = {
        "completions": client.deployments.completions,
        "chat_completions": client.deployments.chat.completions,
        "classification": client.deployments.classification,
        "embeddings": client.deployments.embeddings,
    }
    if op in inference:
        return inference[op].create(**dep, request_body=a["body"])
    raise AssertionError(f"unhandled op {op}")


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value.model_dump(mode="json")


def _error_json(exc: Exception, last: httpx.Response | None) -> dict[str, Any]:
    http_status = last.status_code if last is not None else None
    if isinstance(exc, models.SDKError):
        err = {
            "status": exc.status_code,
            "type": "SDKError",
            "message": exc.message,
            "body": exc.body,
        }
    else:
        data = exc.data.model_dump(mode="json")
        err = {
            "status": _ERROR_STATUS[type(exc)],
            "type": type(exc).__name__,
            "message": data.get("error"),
            "data": data,
        }
    err["http_status"] = http_status
    err["content_type"] = last.headers.get("content-type") if last is not None else None
    return {"error": err}


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    epilog = "ops:\n" + "\n".join(
        f"  {op} {' '.join(names)}  {help_}".rstrip() for op, (names, help_) in OPS.items()
    )
    p = argparse.ArgumentParser(
        description="Run one Emissary SDK operation; print JSON.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", required=True, help="server base URL")
    p.add_argument("--key", default=None, help="API key (omit: no X-API-Key header)")
    p.add_argument("--timeout-ms", type=int, default=300_000)
    p.add_argument("op", choices=sorted(OPS))
    p.add_argument("args", nargs="*")
    ns = p.parse_args(argv)
    names = OPS[ns.op][0]
    required = [n for n in names if not n.endswith("?")]
    if not len(required) <= len(ns.args) <= len(names):
        p.error(f"{ns.op} takes {' '.join(names) or 'no arguments'}; got {ns.args}")
    parsed: dict[str, Any] = {}
    for name, raw in zip(names, ns.args, strict=False):  # optional args may be absent
        name = name.rstrip("?")
        parsed[name] = json.loads(raw) if name == "body" else raw
    return ns, parsed


def main(argv: list[str] | None = None) -> int:
    ns, args = _parse_args(sys.argv[1:] if argv is None else argv)
    exchanges: list[httpx.Response] = []
    http = httpx.Client(event_hooks={"response": [exchanges.append]})
    client = EmissaryClient(
        api_key=ns.key, server_url=ns.server, client=http, timeout_ms=ns.timeout_ms
    )
    last = lambda: exchanges[-1] if exchanges else None  # noqa: E731
    try:
        result = _call(client, ns.op, args)
    except (models.SDKError, *_ERROR_STATUS) as exc:
        print(json.dumps(_error_json(exc, last())))
        return 0
    except Exception:
        # The SDK (or this driver) choked, typically on a response it cannot parse.
        res = last()
        if res is not None:
            req = res.request
            try:
                body = res.text
            except httpx.ResponseNotRead:
                body = "<not read>"
            print(
                f"--- {req.method} {req.url}\n--- HTTP {res.status_code} "
                f"content-type={res.headers.get('content-type')}\n{body[:4000]}",
                file=sys.stderr,
            )
        traceback.print_exc()
        return 2
    finally:
        http.close()
    print(json.dumps(_to_json(result)))
    return 0


if __name__ == "__main__":
    os.environ.pop("EMISSARY_CLIENT_API_KEY", None)
    sys.exit(main())
