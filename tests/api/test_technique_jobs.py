"""DPO and GRPO job requests: the technique on the create route, Emissary v2's GRPO
route with its spec example sent raw, and bad bodies refused naming the field."""

from __future__ import annotations

import json

import pytest

from tests.api.test_jobs import jobs_url, upload

pytestmark = pytest.mark.postgres

PREFERENCES = "".join(json.dumps({"prompt": f"q{i}", "chosen": f" a{i}", "rejected": f" b{i}"})
                      + "\n" for i in range(10)).encode()

# The GRPO request body exactly as the v2 spec's examples compose it
# (createGRPOTrainingJob); only the dataset ids are this server's.
V2_EXAMPLE = """{
  "base_model_option": "pre-trained",
  "base_model": "Llama-3.2-1B-Instruct",
  "checkpoint": 5,
  "train_dataset_id": "%(train)s",
  "test_functions": ["test_similarity_shared"],
  "reward": {"test_function_1": 0.2, "test_function_2": 0.8},
  "test_dataset_id": "%(test)s",
  "train_test_split_ratio": 20,
  "name": "training-1",
  "description": "Fine-tuning the model on my dataset",
  "task_type": "text-generation",
  "parameters": {"learning_rate": 0.0002, "num_train_epochs": 15, "num_generations": 4,
                 "per_device_train_batch_size": 4},
  "hf_model_link": "https://huggingface.co/my_model"
}"""

# The example names three administrator-provided test functions.
ADMIN_FUNCTIONS = '''
def test_similarity_shared(input_text, expected_output, predicted_output):
    return float(expected_output == predicted_output)


def test_function_1(input_text, expected_output, predicted_output):
    return float(len(predicted_output) > 0)


def test_function_2(input_text, expected_output, predicted_output):
    return float(expected_output in predicted_output)
'''


@pytest.fixture
def train_id(client, project):
    return upload(client, project["id"])


def grpo_url(project):
    return jobs_url(project) + "/grpo"


def grpo_body(train_id, **patch):
    body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id,
            "train_test_split_ratio": 20, "test_functions": ["exact_match"],
            "reward": {"exact_match": 1.0},
            "parameters": {"num_generations": 4, "per_device_train_batch_size": 4}}
    body.update(patch)
    return {k: v for k, v in body.items() if v is not None}


def test_v2_spec_example_is_accepted_raw(client, project, settings, train_id):
    functions = settings.home / "test_functions"
    functions.mkdir(parents=True, exist_ok=True)
    (functions / "example.py").write_text(ADMIN_FUNCTIONS)
    test_id = upload(client, project["id"], filename="test.jsonl")
    raw = V2_EXAMPLE % {"train": train_id, "test": test_id}
    resp = client.post(grpo_url(project), content=raw,
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["training_technique"] == "GRPO"
    assert job["reward"] == {"test_function_1": 0.2, "test_function_2": 0.8}
    detail = client.get(f"{jobs_url(project)}/{job['id']}").json()
    assert detail["test_functions"] == ["test_similarity_shared"]
    assert detail["hyper_parameters"]["num_generations"] == 4
    assert detail["hyper_parameters"]["metric_for_best_model"] == "reward"


def test_grpo_job_and_technique_reported(client, project, train_id):
    resp = client.post(grpo_url(project), json=grpo_body(train_id))
    assert resp.status_code == 201, resp.text
    sft = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                               "train_dataset_id": train_id})
    assert sft.status_code == 201 and sft.json()["training_technique"] == "SFT"
    listed = {j["id"]: j["training_technique"] for j in client.get(jobs_url(project)).json()}
    assert listed == {resp.json()["id"]: "GRPO", sft.json()["id"]: "SFT"}


@pytest.mark.parametrize("patch,field,words", [
    ({"reward": {"no_such_function": 1.0}}, "reward", "no_such_function"),
    ({"reward": None}, "reward", "required"),
    ({"reward": {}}, "reward", "non-empty"),
    ({"reward": {"exact_match": "heavy"}}, "reward", "finite"),
    ({"reward": {"exact_match": 0}}, "reward", "every weight is 0"),
    ({"test_functions": None}, "test_functions", "required"),
    ({"test_functions": ["nope"]}, "test_functions", "nope"),
    ({"parameters": {"num_generations": 3, "per_device_train_batch_size": 4}},
     "parameters", "num_generations"),
    ({"parameters": {"beta": -1}}, "parameters", "beta"),
    ({"task_type": "classification"}, "task_type", "GRPO"),
])
def test_bad_grpo_bodies(client, project, train_id, patch, field, words):
    resp = client.post(grpo_url(project), json=grpo_body(train_id, **patch))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error.startswith(field) and words in error, error


def test_nan_weight_refused(client, project, train_id):
    # JSON has no NaN, but Python's parser (and many clients) write and read it.
    raw = json.dumps(grpo_body(train_id, reward={"exact_match": float("nan")}))
    assert "NaN" in raw
    resp = client.post(grpo_url(project), content=raw,
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("reward") and "finite" in resp.json()["error"]


def test_dpo_job(client, project, train_id):
    prefs = upload(client, project["id"], content=PREFERENCES, filename="prefs.jsonl")
    resp = client.post(jobs_url(project), json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": prefs,
        "training_technique": "DPO", "parameters": {"beta": 0.2, "use_lora": "true"}})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["training_technique"] == "DPO" and job["reward"] is None
    detail = client.get(f"{jobs_url(project)}/{job['id']}").json()
    assert detail["hyper_parameters"]["beta"] == 0.2
    assert detail["hyper_parameters"]["metric_for_best_model"] == "preference_accuracy"
    # A preference dataset is DPO's only: SFT refuses it, DPO refuses the others.
    for body, field in (({"train_dataset_id": prefs}, "train_dataset_id"),
                        ({"train_dataset_id": train_id, "training_technique": "DPO"},
                         "train_dataset_id"),
                        ({"train_dataset_id": prefs, "training_technique": "PPO"},
                         "training_technique"),
                        ({"train_dataset_id": train_id, "training_technique": "GRPO"},
                         "training_technique")):
        resp = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm", **body})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"].startswith(field), resp.json()


def test_preference_dataset_issues_have_line_numbers(client, project):
    content = (json.dumps({"prompt": "q", "chosen": " a", "rejected": " b"}) + "\n"
               + json.dumps({"prompt": "q", "chosen": 1, "rejected": " b"}) + "\n").encode()
    resp = client.post(f"/v1/projects/{project['id']}/datasets",
                       files={"file": ("p.jsonl", content)}, data={"name": "p"})
    assert resp.status_code == 400 and "line 2" in resp.text, resp.text
    ok = upload(client, project["id"], content=b"prompt,chosen,rejected\nq, a, b\n",
                filename="p.csv")
    assert ok
