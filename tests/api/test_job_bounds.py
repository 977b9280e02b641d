"""Every job setting has bounds: an absurd value is a 400 naming the field (and its
bound), never a 500 and never a job that fails or runs forever in the worker."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from sqlalchemy import func, select

from tests.api.test_jobs import jobs_url, upload
from tuneyard.training.params import TrainingParameters

pytestmark = pytest.mark.postgres

NAN, INF = float("nan"), float("inf")
HUGE = 10**400  # json.dumps writes all 400 digits

BAD_PARAMETERS = [
    ("num_train_epochs", 1e300, "<= 1000"),
    ("num_train_epochs", 1001, "<= 1000"),
    ("num_train_epochs", NAN, "num_train_epochs"),
    ("num_train_epochs", INF, "num_train_epochs"),
    ("num_train_epochs", "1e400", "num_train_epochs"),
    ("max_steps", HUGE, "<= 10000000"),
    ("max_steps", 10_000_001, "<= 10000000"),
    ("max_steps", 2.5, "whole number"),
    ("max_steps", -INF, "max_steps"),
    ("learning_rate", HUGE, "<= 10"),
    ("learning_rate", 1e300, "<= 10"),
    ("per_device_train_batch_size", 10**9, "<= 4096"),
    ("per_device_eval_batch_size", 4097, "<= 4096"),
    ("gradient_accumulation_steps", 10**6, "<= 4096"),
    ("weight_decay", 1e10, "<= 10"),
    ("warmup_steps", 10**8, "<= 10000000"),
    ("warmup_ratio", NAN, "warmup_ratio"),
    ("logging_steps", 10**8, "<= 10000000"),
    ("seed", 2**63, "< 4294967296"),
    ("seed", 2**32, "< 4294967296"),
    ("seed", -1, ">= 0"),
    ("seed", 1.5, "whole number"),
    ("lora_r", 10**6, "<= 1024"),
    ("lora_alpha", 10**6, "<= 16384"),
    ("lora_dropout", INF, "lora_dropout"),
    ("max_seq_length", 131073, "<= 131072"),
    ("save_steps", 10**8, "<= 10000000"),
    ("keep_checkpoints", 10**5, "<= 10000"),
    ("timeout_seconds", 10**9, "<= 2592000"),
    ("early_stopping_patience", 10**5, "<= 10000"),
    ("eval_generate_samples", 10**6, "<= 10000"),
    ("downsample_size", 101, "<= 100"),
    ("metric_for_best_model", "x" * 300, "at most 200 characters"),
    ("use_lora", 2, "true or false"),
]


def post_raw(client, project, body: dict):
    """Posts `body` as JSON written by Python (NaN and Infinity included, as some
    clients write them)."""
    return client.post(jobs_url(project), content=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"})


def job_rows(app) -> int:
    from tuneyard.db import session_scope
    from tuneyard.tables import TrainingJob

    with session_scope(app.state.engine) as session:
        return session.scalar(select(func.count()).select_from(TrainingJob))


def assert_refused(resp, app, *needles: str) -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["status"] == 400 and isinstance(body["error"], str)
    for needle in needles:
        assert needle in body["error"], body["error"]
    assert len(body["error"]) < 2000  # huge values are not echoed whole
    assert job_rows(app) == 0


@pytest.fixture
def train_id(client, project):
    return upload(client, project["id"])


@pytest.fixture
def cls_id(client, project):
    return upload(client, project["id"], b"input,expected_output\ngood,pos\nbad,neg\n", "c.csv")


def test_every_numeric_setting_has_an_upper_bound():
    for f in fields(TrainingParameters):
        if f.type in ("int", "float"):
            assert "le" in f.metadata or "lt" in f.metadata, f"{f.name} is unbounded"


@pytest.mark.parametrize("name,value,bound", BAD_PARAMETERS,
                         ids=[f"{n}={str(v)[:12]}" for n, v, _ in BAD_PARAMETERS])
def test_out_of_bounds_parameter_is_400(client, app, project, train_id, name, value, bound):
    resp = post_raw(client, project, {"base_model": "tuneyard-tiny-lm",
                                      "train_dataset_id": train_id,
                                      "parameters": {name: value}})
    assert_refused(resp, app, "parameters", name, bound)


BAD_FIELDS = [
    ({"hf_model_link": "../etc"}, "hf_model_link"),
    ({"hf_model_link": "/etc/passwd"}, "hf_model_link"),
    ({"hf_model_link": "org/../../etc"}, "hf_model_link"),
    ({"hf_model_link": "a/b/c"}, "hf_model_link"),
    ({"hf_model_link": "https://evil.example/org/name"}, "hf_model_link"),
    ({"hf_model_link": "https://huggingface.co/org/name/tree/main"}, "hf_model_link"),
    ({"hf_model_link": "org--x/name"}, "hf_model_link"),
    ({"hf_model_link": "x" * 5000}, "hf_model_link"),
    ({"base_model": "m" * 5000, "hf_model_link": "org/name"}, "base_model"),
    ({"base_model_option": "fine-tuned", "checkpoint": INF}, "checkpoint"),
    ({"base_model_option": "fine-tuned", "checkpoint": NAN}, "checkpoint"),
    ({"base_model_option": "fine-tuned", "checkpoint": 1e20}, "checkpoint"),
    ({"base_model_option": "fine-tuned", "checkpoint": 2.5}, "checkpoint"),
    ({"test_functions": [f"f{i}" for i in range(100)]}, "at most 32"),
    ({"train_test_split_ratio": NAN}, "train_test_split_ratio"),
    ({"train_test_split_ratio": INF}, "train_test_split_ratio"),
    ({"parameters": {f"p{i}": 1 for i in range(1000)}}, "parameters"),
]


@pytest.mark.parametrize("patch,expected", BAD_FIELDS,
                         ids=[f"{next(iter(p))}-{i}" for i, (p, _) in enumerate(BAD_FIELDS)])
def test_bad_field_is_400(client, app, project, train_id, patch, expected):
    body = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id, **patch}
    assert_refused(post_raw(client, project, body), app, expected)


@pytest.mark.parametrize("spec,expected", [
    ({"pos": NAN, "neg": 0.5}, "<= 1000000"),
    ({"pos": INF}, "<= 1000000"),
    ({"pos": 10**7, "neg": 1}, "<= 1000000"),
    ({"pos": -1}, ">= 0"),
    ({f"l{i}": 1 for i in range(1001)}, "at most 1000 labels"),
])
def test_rebalance_counts_are_bounded(client, app, project, cls_id, spec, expected):
    body = {"base_model": "all-MiniLM-L6-v2-classifier", "train_dataset_id": cls_id,
            "rebalance_data": spec}
    assert_refused(post_raw(client, project, body), app, "rebalance_data", expected)


@pytest.mark.parametrize("link,repo", [
    ("org/name", "org/name"),
    ("gpt2", "gpt2"),
    ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M"),
    ("https://huggingface.co/nobody/not-cached-model", "nobody/not-cached-model"),
    ("https://huggingface.co/org/my.model_v1/", "org/my.model_v1"),
])
def test_hub_links_that_stay_accepted(client, project, train_id, link, repo):
    resp = client.post(jobs_url(project), json={
        "base_model": "hub-model", "train_dataset_id": train_id, "hf_model_link": link})
    assert resp.status_code == 201, resp.text
    detail = client.get(f"{jobs_url(project)}/{resp.json()['id']}").json()
    assert detail["hf_model_link"] == repo


def test_values_at_the_bounds_are_accepted(client, project, train_id):
    resp = client.post(jobs_url(project), json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id,
        "parameters": {"seed": 2**32 - 1, "max_steps": 10_000_000, "lora_r": 1024,
                       "max_seq_length": 131072, "num_train_epochs": 1000,
                       "per_device_train_batch_size": 4096, "use_lora": True},
        "test_functions": []})
    assert resp.status_code == 201, resp.text
    detail = client.get(f"{jobs_url(project)}/{resp.json()['id']}").json()
    assert detail["hyper_parameters"]["seed"] == 2**32 - 1


def test_parameter_values_on_the_wire_are_strings_or_numbers(client, project, train_id):
    """The Emissary contract allows string|number values only: booleans are "true"/"false"
    (which job requests accept back)."""
    for model in client.get("/v1/models").json():
        for value in model["parameter_template"].values():
            assert isinstance(value, str | int | float) and not isinstance(value, bool), model
    template = client.get("/v1/models/tuneyard-tiny-lm").json()["parameter_template"]
    assert template["use_lora"] == "false"
    resp = client.post(jobs_url(project), json={
        "base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id,
        "parameters": {**template, "use_lora": True}})
    assert resp.status_code == 201, resp.text
    params = client.get(f"{jobs_url(project)}/{resp.json()['id']}").json()["hyper_parameters"]
    assert params["use_lora"] == "true"
    assert all(isinstance(v, str | int | float) and not isinstance(v, bool)
               for v in params.values())


def test_server_default_timeout_applies_when_a_job_sets_none(client, app, project, train_id,
                                                             settings):
    settings.default_timeout_seconds = 7200
    given = {"base_model": "tuneyard-tiny-lm", "train_dataset_id": train_id}
    plain = client.post(jobs_url(project), json=given).json()["id"]
    own = client.post(jobs_url(project), json={**given, "parameters": {"timeout_seconds": 60}})
    unlimited = client.post(jobs_url(project),
                            json={**given, "parameters": {"timeout_seconds": 0}})

    def timeout_of(job_id):
        detail = client.get(f"{jobs_url(project)}/{job_id}").json()
        return float(detail["hyper_parameters"]["timeout_seconds"])

    assert timeout_of(plain) == 7200
    assert timeout_of(own.json()["id"]) == 60
    assert timeout_of(unlimited.json()["id"]) == 0


def test_hub_models_can_be_switched_off(client, app, project, train_id, settings):
    settings.allow_hub_models = False
    resp = client.post(jobs_url(project), json={
        "base_model": "hub-model", "train_dataset_id": train_id, "hf_model_link": "org/name"})
    assert_refused(resp, app, "hf_model_link", "TUNEYARD_ALLOW_HUB_MODELS")
    resp = client.post(jobs_url(project), json={"base_model": "tuneyard-tiny-lm",
                                                 "train_dataset_id": train_id})
    assert resp.status_code == 201, resp.text  # catalog models are unaffected
