"""Projects over the real app: create, list, get, delete, isolation between users."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


def test_create_with_and_without_name(client):
    named = client.post("/v1/projects", json={"name": "my_project"})
    assert named.status_code == 201
    assert named.json()["name"] == "my_project"
    assert named.json()["id"].startswith("ms-")
    unnamed = client.post("/v1/projects")
    assert unnamed.status_code == 201
    assert unnamed.json()["name"]
    ids = [p["id"] for p in client.get("/v1/projects").json()]
    assert ids == [named.json()["id"], unnamed.json()["id"]]


def test_bad_project_body_is_400_naming_the_field(client):
    resp = client.post("/v1/projects", json={"name": 12})
    assert resp.status_code == 400
    assert resp.json()["status"] == 400
    assert "name" in resp.json()["error"]
    resp = client.post("/v1/projects", json={"name": "   "})
    assert resp.status_code == 400
    assert client.get("/v1/projects").json() == []


def test_get_project_detail(client, project):
    resp = client.get(f"/v1/projects/{project['id']}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == project["id"] and body["name"] == "p1"
    assert body["datasets"] == [] and body["training_jobs"] == [] and body["deployments"] == []


def test_unknown_project_is_404(client):
    resp = client.get("/v1/projects/ms-nope")
    assert resp.status_code == 404
    assert resp.json()["code"] == "object_not_found"


def test_another_users_project_does_not_exist_for_them(client, other_user, project):
    assert other_user.get(f"/v1/projects/{project['id']}").status_code == 404
    assert other_user.delete(f"/v1/projects/{project['id']}").status_code == 404
    assert other_user.get("/v1/projects").json() == []
    assert other_user.get(f"/v1/projects/{project['id']}/datasets").status_code == 404
    # and nothing changed for the owner
    assert client.get(f"/v1/projects/{project['id']}").status_code == 200


def test_delete_project(client, project):
    resp = client.delete(f"/v1/projects/{project['id']}")
    assert resp.status_code == 204
    assert resp.content == b""
    assert client.get(f"/v1/projects/{project['id']}").status_code == 404
    assert client.delete(f"/v1/projects/{project['id']}").status_code == 404
