"""Lists page with `limit` and `after` and stay plain arrays (the contract's
shape); `X-Next-After` and `Link` say where the next page starts; the client
follows pages."""

from __future__ import annotations

import pytest

from tests.api.test_jobs import jobs_url, upload
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.postgres


def walk(client, url: str, limit: int) -> tuple[list[str], int]:
    """Every id of a list, read `limit` at a time by following the headers; and
    how many pages it took."""
    ids, pages, params = [], 0, {"limit": limit}
    while True:
        resp = client.get(url, params=params)
        assert resp.status_code == 200, resp.text
        assert isinstance(resp.json(), list) and len(resp.json()) <= limit
        ids += [item["id"] for item in resp.json()]
        pages += 1
        after = resp.headers.get("x-next-after")
        if after is None:
            assert "link" not in resp.headers
            return ids, pages
        assert after == ids[-1]
        assert resp.headers["link"] == f'<{url}?limit={limit}&after={after}>; rel="next"' \
            or resp.headers["link"] == f'<{url}?after={after}&limit={limit}>; rel="next"'
        params = {"limit": limit, "after": after}


def test_every_list_pages(client, project):
    for _ in range(4):
        client.post("/v1/projects", json={})
    datasets = f"/v1/projects/{project['id']}/datasets"
    ds = [upload(client, project["id"], filename=f"d{i}.jsonl") for i in range(3)]
    for _ in range(3):
        client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                             "train_dataset_id": ds[0]})
    deployments = f"/v1/projects/{project['id']}/deployments"
    for _ in range(3):
        client.post(deployments, json={"training_job_id": "tuneyard-tiny-lm", "checkpoint": 0,
                                       "server_type": "serverless"})
    for url, count in (("/v1/projects", 5), (datasets, 3), (jobs_url(project), 3),
                       (deployments, 3)):
        everything = [item["id"] for item in client.get(url).json()]
        assert len(everything) == count and everything == sorted(everything)
        assert walk(client, url, 2) == (everything, (count + 1) // 2)
        assert walk(client, url, count) == (everything, 1)


def test_a_page_after_a_deleted_id_continues(client, project):
    ids = sorted(client.post("/v1/projects", json={}).json()["id"] for _ in range(3))
    ids = sorted([*ids, project["id"]])
    first = client.get("/v1/projects", params={"limit": 2})
    after = first.headers["x-next-after"]
    assert client.delete(f"/v1/projects/{after}").status_code == 204
    rest = client.get("/v1/projects", params={"limit": 2, "after": after}).json()
    assert [p["id"] for p in rest] == ids[2:]


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "9" * 400}, "limit"), ({"after": "x" * 65}, "after"), ({"after": ""}, "after"),
])
def test_bad_paging_is_400(client, project, params, field):
    for url in ("/v1/projects", f"/v1/projects/{project['id']}/deployments"):
        resp = client.get(url, params=params)
        assert resp.status_code == 400, resp.text
        assert resp.json()["status"] == 400 and field in resp.json()["error"]


def test_the_client_follows_pages(client, project):
    """The client (and the CLI, which lists through it) reads every page; here the
    server's pages are made 2 long by the transport."""
    import httpx

    from tuneyard.client import TuneyardClient

    for _ in range(4):
        client.post("/v1/projects", json={})
    ds = [upload(client, project["id"], filename=f"d{i}.jsonl") for i in range(3)]
    asked: list[str] = []

    def small_pages(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        params.setdefault("limit", "2")
        asked.append(str(params))
        resp = client.request(request.method, request.url.path, params=params,
                              headers={"x-api-key": request.headers.get("x-api-key", "")})
        return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content)

    with TuneyardClient("http://testserver", ADMIN_KEY,
                        transport=httpx.MockTransport(small_pages)) as api:
        projects = api.projects.list()
        datasets = api.datasets.list(project["id"])
    assert [p.id for p in projects] == [p["id"] for p in client.get("/v1/projects").json()]
    assert len(projects) == 5 and [d.id for d in datasets] == sorted(ds)
    assert len(asked) == 3 + 2
