"""The OpenAI-compatible API in-process, driven by the official `openai` package
(its http_client is the app's TestClient): files, job creation with "auto",
paging, cancel/pause/resume of queued jobs, events, and OpenAI-shaped 4xx.
Training, checkpoints and inference with the fine-tuned model run end to end
in tests/e2e/test_openai_fine_tuning.py."""

from __future__ import annotations

import io
import json

import openai
import pytest

from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.postgres

CHAT = "".join(json.dumps({"messages": [
    {"role": "system", "content": "You repeat letters."},
    {"role": "user", "content": f"say {c}"},
    {"role": "assistant", "content": f"{c}{c}{c}"}]}) + "\n" for c in "abcdefghijklmnop")
PREFERENCE = json.dumps({
    "input": {"messages": [{"role": "user", "content": "say a"}]},
    "preferred_output": [{"role": "assistant", "content": "aaa"}],
    "non_preferred_output": [{"role": "assistant", "content": "bbb"}]}) + "\n"


@pytest.fixture
def oa(client) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/openai/v1", api_key=ADMIN_KEY,
                         http_client=client, max_retries=0)


def upload(oa, text: str = CHAT, name: str = "chat.jsonl", purpose: str = "fine-tune"):
    return oa.files.create(file=(name, io.BytesIO(text.encode())), purpose=purpose)


def error_of(exc_info) -> dict:
    body = exc_info.value.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_files_upload_list_retrieve_content_delete(oa, client):
    first, second = upload(oa), upload(oa, name="again.jsonl")
    assert first.object == "file" and first.purpose == "fine-tune"
    assert first.bytes == len(CHAT.encode()) and first.filename == "chat.jsonl"
    assert oa.files.retrieve(first.id).id == first.id
    assert [f.id for f in oa.files.list()] == [second.id, first.id]  # newest first
    page = oa.files.list(limit=1)
    assert [f.id for f in page.data] == [second.id] and page.has_more
    assert [f.id for f in page.get_next_page().data] == [first.id]
    assert oa.files.content(first.id).read() == CHAT.encode()
    # A file is a dataset of the caller's OpenAI project.
    projects = client.get("/v1/projects").json()
    (project,) = [p for p in projects if p["name"].startswith("OpenAI API")]
    datasets = client.get(f"/v1/projects/{project['id']}/datasets").json()
    assert {d["id"] for d in datasets} == {first.id, second.id}
    deleted = oa.files.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    with pytest.raises(openai.NotFoundError) as exc:
        oa.files.retrieve(first.id)
    assert error_of(exc)["code"] == "file_not_found"


BAD_UPLOADS = [  # (text, file name, purpose, param, words in the message)
    (CHAT, "chat.jsonl", "assistants", "purpose", "fine-tune"),
    ('{"prompt": "hello", "completion": {"x": 1}}\n', "bad.jsonl", "fine-tune", "file",
     "chat format"),
    ('{"text": "hello", "label": "x"}\n', "bad.jsonl", "fine-tune", "file", "messages"),
    ("not json\n", "bad.jsonl", "fine-tune", "file", "line 1"),
    (PREFERENCE.replace("preferred_output\": [", "preferred_output\": 3, \"x\": ["),
     "pref.jsonl", "fine-tune", "file", "preferred_output"),
]


def test_bad_uploads_are_openai_shaped_400(oa):
    for text, name, purpose, param, words in BAD_UPLOADS:
        with pytest.raises(openai.BadRequestError) as exc:
            upload(oa, text, name, purpose)
        error = error_of(exc)
        assert error["type"] == "invalid_request_error" and error["param"] == param, error
        assert words in error["message"], error
    assert list(oa.files.list()) == []  # nothing was kept


def test_job_with_auto_hyperparameters_shows_resolved_values(oa, client):
    train = upload(oa)
    job = oa.fine_tuning.jobs.create(model="tuneyard-tiny-chat", training_file=train.id,
                                     suffix="letters", seed=7,
                                     hyperparameters={"n_epochs": "auto", "batch_size": "auto",
                                                      "learning_rate_multiplier": 0.5})
    assert job.object == "fine_tuning.job" and job.status == "queued"
    assert job.model == "tuneyard-tiny-chat" and job.training_file == train.id
    assert job.seed == 7 and job.fine_tuned_model is None and job.error is None
    # 16 records: 3 epochs would see 48 < 100 examples, so 100 // 16 = 6 epochs; the
    # batch is the largest power of two <= 16 / 4.
    assert job.hyperparameters.n_epochs == 6 and job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == 0.5
    assert job.method.type == "supervised"
    assert job.method.supervised.hyperparameters.n_epochs == 6
    # The tuneyard job behind it: the template's learning rate times the multiplier.
    detail = client.get(f"/v1/projects/{_project_id(client)}/training-jobs/{job.id}").json()
    assert detail["hyper_parameters"]["num_train_epochs"] == 6
    assert detail["hyper_parameters"]["learning_rate"] == pytest.approx(0.003 * 0.5)
    assert detail["task_type"] == "text-generation"

    assert oa.fine_tuning.jobs.retrieve(job.id).hyperparameters.n_epochs == 6
    paused = oa.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    assert oa.fine_tuning.jobs.resume(job.id).status == "queued"
    cancelled = oa.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at
    with pytest.raises(openai.BadRequestError) as exc:
        oa.fine_tuning.jobs.resume(job.id)
    assert "only a paused job" in error_of(exc)["message"]

    events = list(oa.fine_tuning.jobs.list_events(job.id))
    assert [e.message.split(":")[0] for e in events][:3] == [
        "job cancelled", "job resumed", "job paused (it had not started)"]
    assert events[-1].message.startswith("created")
    assert all(e.object == "fine_tuning.job.event" and e.type == "message" for e in events)
    first = oa.fine_tuning.jobs.list_events(job.id, limit=2)
    assert first.has_more and [e.id for e in first.data] == [e.id for e in events[:2]]
    assert [e.id for e in first.get_next_page().data] == [e.id for e in events[2:4]]


def _project_id(client) -> str:
    return next(p["id"] for p in client.get("/v1/projects").json()
                if p["name"].startswith("OpenAI API"))


def test_jobs_list_pages_newest_first(oa):
    train = upload(oa)
    ids = [oa.fine_tuning.jobs.create(model="tuneyard-tiny-chat", training_file=train.id,
                                      hyperparameters={"n_epochs": 1}).id for _ in range(3)]
    page = oa.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    assert [j.id for j in page.get_next_page().data] == ids[:1]
    assert [j.id for j in oa.fine_tuning.jobs.list()] == ids[::-1]


BAD_JOBS = [  # (change to a good body, status, param, code or None)
    ({"training_file": "ds-missing"}, 400, "training_file", "invalid_training_file"),
    ({"validation_file": "ds-missing"}, 400, "validation_file", "invalid_validation_file"),
    ({"model": "gpt-4o-mini"}, 400, "model", "model_not_available"),
    ({"model": "all-MiniLM-L6-v2"}, 400, "model", "model_not_available"),
    ({"model": "ft:tuneyard-tiny-chat::tr-nothing"}, 404, "model", "model_not_found"),
    ({"hyperparameters": {"n_epochs": 0}}, 400, "hyperparameters.n_epochs", None),
    ({"hyperparameters": {"n_epochs": "many"}}, 400, "hyperparameters.n_epochs", None),
    ({"hyperparameters": {"beta": 0.1}}, 400, "hyperparameters.beta", None),
    ({"method": {"type": "dpo"}}, 400, "training_file", "invalid_training_file"),
    ({"method": {"type": "reinforcement"}}, 400, "method.type", "unsupported_method"),
    ({"method": {"type": "magic"}}, 400, "method.type", None),
    ({"suffix": "no spaces"}, 400, "suffix", None),
    ({"metadata": {"tuneyard.max_seq_length": "2"}}, 400, "hyperparameters", None),
]


def test_bad_jobs_are_openai_shaped_4xx(oa):
    good = {"model": "tuneyard-tiny-chat", "training_file": upload(oa).id}
    for change, status, param, code in BAD_JOBS:
        with pytest.raises(openai.APIStatusError) as exc:
            oa.fine_tuning.jobs.create(**{**good, **change})
        assert exc.value.status_code == status, change
        error = error_of(exc)
        assert error["param"] == param, (change, error)
        assert code is None or error["code"] == code, (change, error)
    assert list(oa.fine_tuning.jobs.list()) == []  # nothing was created


def test_unknown_job_model_and_key_are_openai_shaped(oa, client, anon):
    with pytest.raises(openai.NotFoundError) as exc:
        oa.fine_tuning.jobs.retrieve("tr-nothing")
    assert error_of(exc)["code"] == "fine_tuning_job_not_found"
    with pytest.raises(openai.NotFoundError) as exc:
        oa.chat.completions.create(model="no-such-model",
                                   messages=[{"role": "user", "content": "hi"}])
    assert error_of(exc)["param"] == "model"
    bad = openai.OpenAI(base_url="http://testserver/openai/v1", api_key="wrong",
                        http_client=anon, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.files.list()
    assert error_of(exc)["code"] == "invalid_api_key"
    # The Emissary routes keep their own error body.
    resp = client.get("/v1/projects/ms-nothing")
    assert resp.status_code == 404 and resp.json()["status"] == 404


def test_models_lists_available_base_models(oa):
    ids = [m.id for m in oa.models.list()]
    assert "tuneyard-tiny-chat" in ids and "tuneyard-tiny-lm" in ids
    assert oa.models.retrieve("tuneyard-tiny-chat").object == "model"


def test_preference_file_becomes_a_dpo_job(oa):
    # The converted rows ({prompt, chosen, rejected}) are a preference dataset, which
    # only `method: dpo` takes (and supervised refuses).
    pref = upload(oa, PREFERENCE * 3, "pref.jsonl")
    with pytest.raises(openai.BadRequestError) as exc:
        oa.fine_tuning.jobs.create(model="tuneyard-tiny-chat", training_file=pref.id)
    assert error_of(exc)["param"] == "training_file"
    job = oa.fine_tuning.jobs.create(
        model="tuneyard-tiny-chat", training_file=pref.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    assert job.method.type == "dpo"
    assert job.method.dpo.hyperparameters.beta == 0.2
    oa.fine_tuning.jobs.cancel(job.id)


def test_preference_records_map_to_prompt_chosen_rejected():
    from tuneyard.data.preference import preference_row

    row = preference_row(json.loads(PREFERENCE))
    assert row == {"prompt": [{"role": "user", "content": "say a"}],
                   "chosen": [{"role": "assistant", "content": "aaa"}],
                   "rejected": [{"role": "assistant", "content": "bbb"}]}
    with pytest.raises(ValueError, match="line 3: preferred_output: the last message"):
        preference_row({**json.loads(PREFERENCE),
                        "preferred_output": [{"role": "user", "content": "x"}]}, line=3)
    with pytest.raises(ValueError, match="needs the keys input, preferred_output"):
        preference_row({"messages": []})
