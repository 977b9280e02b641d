"""Training-job requests over the real app: validation, listing, cancel, delete.

No worker runs here (jobs stay Pending); training itself is tested in
tests/worker and end to end in tests/e2e.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.postgres

COMPLETIONS = "".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n"
                      for i in range(10)).encode()
PAIRS = b"text1,text2,score\na,b,0.5\nc,d,0.1\n"


def upload(client, project_id, content=COMPLETIONS, filename="train.jsonl"):
    resp = client.post(f"/v1/projects/{project_id}/datasets",
                       files={"file": (filename, content)}, data={"name": filename})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.fixture
def train_id(client, project):
    return upload(client, project["id"])


def jobs_url(project):
    return f"/v1/projects/{project['id']}/training-jobs"


def test_create_list_get(client, project, train_id):
    resp = client.post(jobs_url(project), json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id, "name": "first",
        "parameters": {"learning_rate": "0.01", "num_train_epochs": 2},
        "train_test_split_ratio": 20,
    })
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["id"].startswith("tr-") and job["status"] == "Pending" and job["progress"] == 0
    assert job["task_type"] == "text-generation" and job["base_model_option"] == "pre-trained"
    assert [j["id"] for j in client.get(jobs_url(project)).json()] == [job["id"]]
    detail = client.get(f"{jobs_url(project)}/{job['id']}").json()
    assert detail["train_dataset"]["id"] == train_id and detail["test_dataset"] is None
    assert detail["hyper_parameters"]["learning_rate"] == 0.01
    assert detail["hyper_parameters"]["num_train_epochs"] == 2
    # the base model's template fills what the user did not say
    assert detail["hyper_parameters"]["max_seq_length"] == 256
    assert detail["split"] == {"test_fraction": 0.2, "seed": 42}
    assert detail["training_loss"] == []
    assert client.get(f"{jobs_url(project)}/{job['id']}/checkpoints").json() == []
    project_detail = client.get(f"/v1/projects/{project['id']}").json()
    assert [j["id"] for j in project_detail["training_jobs"]] == [job["id"]]


@pytest.mark.parametrize("patch,expected", [
    ({"base_model": "no-such-model"}, "base_model"),
    ({"base_model": "Llama-3.2-1B-Instruct"}, "not available"),
    ({"train_dataset_id": "ds-unknown"}, "train_dataset_id"),
    ({"task_type": "translation"}, "task_type"),
    ({"task_type": "embedding"}, "train_dataset_id"),
    ({"parameters": {"lr": 0.1}}, "allowed"),
    ({"parameters": {"learning_rate": -1}}, "learning_rate"),
    ({"parameters": {"num_train_epochs": "many"}}, "num_train_epochs"),
    ({"train_test_split_ratio": 150}, "train_test_split_ratio"),
    ({"base_model_option": "fine-tuned"}, "checkpoint"),
    ({"base_model_option": "fine-tuned", "checkpoint": 1}, "base_model"),
    ({"base_model_option": "sideways"}, "base_model_option"),
    ({"rebalance_data": {"a": 0.5}}, "rebalance_data"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"task_type": "regression"}, "train_dataset_id"),
    ({"train_dataset_id": None}, "train_dataset_id"),
])
def test_bad_requests_are_400_naming_the_problem(client, project, train_id, patch, expected):
    body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id, **patch}
    resp = client.post(jobs_url(project), json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["status"] == 400
    assert expected in resp.json()["error"]
    assert client.get(jobs_url(project)).json() == []


def test_dataset_of_another_project_is_refused(client, project, train_id):
    other = client.post("/v1/projects", json={"name": "other"}).json()
    resp = client.post(jobs_url(other), json={"base_model": "tuneyard-tiny-lm",
                                              "train_dataset_id": train_id})
    assert resp.status_code == 400 and "train_dataset_id" in resp.json()["error"]


def test_task_follows_model_type_and_data_shape(client, project):
    pairs = upload(client, project["id"], PAIRS, "pairs.csv")
    resp = client.post(jobs_url(project), json={"base_model": "all-MiniLM-L6-v2",
                                                "train_dataset_id": pairs})
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_type"] == "embedding"
    cls = upload(client, project["id"], b"input,expected_output\ngood,pos\nbad,neg\n", "c.csv")
    resp = client.post(jobs_url(project), json={
        "base_model": "all-MiniLM-L6-v2-classifier", "train_dataset_id": cls,
        "test_dataset_id": cls, "rebalance_data": {"pos": 0.5, "neg": 0.5}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_type"] == "classification"


def test_cancel_pending_job_and_delete(client, project, train_id):
    job = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                               "train_dataset_id": train_id}).json()
    url = f"{jobs_url(project)}/{job['id']}"
    resp = client.post(url + "/cancel")
    assert resp.status_code == 204 and resp.content == b""
    assert client.get(url).json()["status"] == "Cancelled"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.get(url + "/checkpoints").status_code == 404
    assert client.post(url + "/cancel").status_code == 404


def test_other_users_cannot_see_jobs(client, other_user, project, train_id):
    job = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                               "train_dataset_id": train_id}).json()
    assert other_user.get(f"{jobs_url(project)}/{job['id']}").status_code == 404
    assert other_user.post(jobs_url(project), json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id}).status_code == 404
