"""The dashboard's sign-in, CSRF and scoping, in process (the browser tests cover the rest)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_KEY
from tuneyard.web import session as cookies


@pytest.fixture
def web(client):
    """The admin's in-process client, without the API key header: a browser's view."""
    client.headers.pop("X-API-Key", None)
    return client


def sign_in(web, key: str = ADMIN_KEY):
    return web.post("/login", data={"api_key": key, "next": "/"}, follow_redirects=False)



def csrf_of(web) -> str:
    page = web.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_pages_need_a_session(web):
    res = web.get("/", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/login?next=/"
    assert "Sign in" in web.get("/login").text


def test_sign_in_sets_a_strict_httponly_cookie(web):
    res = sign_in(web)
    assert res.status_code == 303
    cookie = res.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert ADMIN_KEY not in cookie  # the key's id, never the key
    assert res.headers["x-frame-options"] == "DENY"  # no clickjacking of the actions
    assert "Projects" in web.get("/").text


def test_a_wrong_key_is_refused(web):
    res = sign_in(web, "ty_not-a-key")
    assert res.status_code == 401 and "not valid" in res.text
    assert web.get("/", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(web, settings):
    sign_in(web)
    value = web.cookies.get(cookies.COOKIE)
    body, _, mac = value.rpartition(".")
    web.cookies.clear()
    web.cookies.set(cookies.COOKIE, body + "x." + mac)
    assert web.get("/", follow_redirects=False).status_code == 303
    expired = cookies.dump(cookies.WebSession("key_x", "c", 1), secret=settings.signing_secret())
    assert cookies.load(expired, secret=settings.signing_secret()) is None


def test_state_changes_need_the_csrf_token(web):
    sign_in(web)
    assert web.post("/projects", data={"name": "x"}).status_code == 403
    token = csrf_of(web)
    foreign = web.post("/projects", data={"name": "x", "csrf": token},
                       headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    res = web.post("/projects", data={"name": "mine", "csrf": token}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].startswith("/projects/ms-")


def test_another_users_project_is_404_and_sign_out_ends_the_session(web, app):
    from sqlalchemy.orm import Session

    from tuneyard.services.keys import create_key
    from tuneyard.services.projects import create_project

    with Session(app.state.engine) as db:
        other_key, row = create_key(session=db, name="other")
        theirs = create_project(session=db, owner=row.user, name="theirs").id
        db.commit()
    sign_in(web)
    res = web.get(f"/projects/{theirs}")
    assert res.status_code == 404 and "Not found" in res.text
    web.post("/logout", data={"csrf": csrf_of(web)})
    assert web.get(f"/projects/{theirs}", follow_redirects=False).status_code == 303
    sign_in(web, other_key)
    assert "theirs" in web.get(f"/projects/{theirs}").text


def _pending_job(client) -> tuple[str, str]:
    """A project with a Pending job (no worker runs in these tests)."""
    project = client.post("/v1/projects", json={"name": "jobs"}, headers={
        "X-API-Key": ADMIN_KEY}).json()["id"]
    rows = "".join(f'{{"prompt": "say {c}:", "completion": " {c}{c}"}}\n' for c in "abcdef")
    dataset = client.post(f"/v1/projects/{project}/datasets", files={"file": ("a.jsonl", rows)},
                          headers={"X-API-Key": ADMIN_KEY}).json()["id"]
    return project, dataset


def test_new_job_form_starts_a_job_or_names_the_bad_field(web):
    project, dataset = _pending_job(web)
    sign_in(web)
    token = csrf_of(web)
    form = web.get(f"/projects/{project}/jobs/new?dataset={dataset}").text
    assert 'value="tuneyard-tiny-lm"' in form and f'value="{dataset}" selected' in form
    assert 'id="p_learning_rate"' in form and 'max="10"' in form  # bounds from the reference
    bad = web.post(f"/projects/{project}/jobs", data={
        "csrf": token, "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
        "p_learning_rate": "20", "test_functions": ["rouge_l", "chrf"]})
    assert bad.status_code == 400 and "learning_rate" in bad.text
    assert 'value="20"' in bad.text  # what was typed stays in the form
    assert 'value="chrf" checked' in bad.text and 'value="rouge_l" checked' in bad.text
    res = web.post(f"/projects/{project}/jobs", data={
        "csrf": token, "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
        "p_num_train_epochs": "2", "p_use_lora": "false", "test_functions": "exact_match"},
        follow_redirects=False)
    assert res.status_code == 303, res.text
    job_id = res.headers["location"].rsplit("/", 1)[1]
    job = web.get(f"/v1/projects/{project}/training-jobs/{job_id}",
                  headers={"X-API-Key": ADMIN_KEY}).json()
    assert job["status"] == "Pending" and job["hyper_parameters"]["num_train_epochs"] == 2
    assert job["test_functions"] == ["exact_match"]
    # Pause and resume from the job page: a Pending job pauses at once.
    job_url = f"/v1/projects/{project}/training-jobs/{job_id}"
    assert "/pause" in web.get(res.headers["location"]).text
    web.post(res.headers["location"] + "/pause", data={"csrf": token})
    assert web.get(job_url, headers={"X-API-Key": ADMIN_KEY}).json()["status"] == "Paused"
    assert "/resume" in web.get(res.headers["location"]).text
    web.post(res.headers["location"] + "/resume", data={"csrf": token})
    assert web.get(job_url, headers={"X-API-Key": ADMIN_KEY}).json()["status"] == "Pending"
    # Cancel from the job page: a Pending job is Cancelled at once.
    page = web.get(res.headers["location"]).text
    assert 'id="cancel-job"' in page
    web.post(res.headers["location"] + "/cancel", data={"csrf": token})
    assert "Cancelled" in web.get(res.headers["location"]).text


def test_sign_in_only_returns_to_this_site(web):
    for target, expected in (("/projects", "/projects"), ("//evil.example/x", "/"),
                             ("/\\evil.example", "/"), ("https://evil.example", "/")):
        res = web.post("/login", data={"api_key": ADMIN_KEY, "next": target},
                       follow_redirects=False)
        assert res.headers["location"] == expected, target


def test_an_upload_past_the_limit_is_refused_before_it_is_read(web, app):
    sign_in(web)
    project = web.post("/projects", data={"name": "big", "csrf": csrf_of(web)},
                       follow_redirects=False).headers["location"]
    limit = app.state.settings.max_upload_bytes
    res = web.post(project + "/datasets", headers={
        "X-CSRF-Token": csrf_of(web), "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(limit + 10 * 1024 * 1024)}, content=b"--x--\r\n")
    assert res.status_code == 413 and "TUNEYARD_MAX_UPLOAD_BYTES" in res.json()["error"]


def test_continue_from_a_checkpoint_of_another_job(web, app):
    """The form's "continue from checkpoint N of job X" makes a fine-tuned-option job."""
    from sqlalchemy.orm import Session

    from tuneyard.tables import Checkpoint

    project, dataset = _pending_job(web)
    source = web.post(f"/v1/projects/{project}/training-jobs", headers={
        "X-API-Key": ADMIN_KEY}, json={"base_model": "tuneyard-tiny-lm",
                                        "train_dataset_id": dataset}).json()["id"]
    with Session(app.state.engine) as db:  # what a worker records when it publishes one
        db.add(Checkpoint(job_id=source, number=1, step=4, epoch=1.0,
                          storage_prefix=f"x/{source}/1/"))
        db.commit()
    sign_in(web)
    form = web.get(f"/projects/{project}/jobs/new?from_job={source}&checkpoint=1").text
    assert f'<option value="{source}" selected>' in form and 'data-selected="1"' in form
    res = web.post(f"/projects/{project}/jobs", data={
        "csrf": csrf_of(web), "source_job": source, "source_checkpoint": "1",
        "train_dataset_id": dataset}, follow_redirects=False)
    assert res.status_code == 303, res.text
    job = web.get(f"/v1/projects/{project}/training-jobs/"
                  f"{res.headers['location'].rsplit('/', 1)[1]}",
                  headers={"X-API-Key": ADMIN_KEY}).json()
    assert job["base_model_option"] == "fine-tuned"
    assert job["base_fine_tuned_model_checkpoint"] == 1 and job["base_model"] == "tuneyard-tiny-lm"


def test_names_are_escaped(web):
    sign_in(web)
    res = web.post("/projects", data={"name": "<script>alert(1)</script>", "csrf": csrf_of(web)})
    assert "<script>alert(1)</script>" not in res.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.text


def test_delete_a_dataset_a_job_and_the_project(web):
    project, dataset = _pending_job(web)
    job = web.post(f"/v1/projects/{project}/training-jobs", headers={"X-API-Key": ADMIN_KEY},
                   json={"base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset}).json()
    sign_in(web)
    token = csrf_of(web)
    page = web.get(f"/projects/{project}/jobs/{job['id']}").text
    assert f'action="/projects/{project}/jobs/{job["id"]}/delete"' in page
    assert web.post(f"/projects/{project}/jobs/{job['id']}/delete").status_code == 403
    res = web.post(f"/projects/{project}/jobs/{job['id']}/delete", data={"csrf": token},
                   follow_redirects=False)
    assert res.headers["location"] == f"/projects/{project}"
    assert web.get(f"/projects/{project}/jobs/{job['id']}").status_code == 404
    web.post(f"/projects/{project}/datasets/{dataset}/delete", data={"csrf": token})
    assert web.get(f"/v1/projects/{project}/datasets", headers={"X-API-Key": ADMIN_KEY}
                   ).json() == []
    res = web.post(f"/projects/{project}/delete", data={"csrf": token}, follow_redirects=False)
    assert res.headers["location"] == "/"
    assert web.get(f"/projects/{project}").status_code == 404


def test_new_job_form_starts_grpo_and_dpo_jobs(web):
    project, dataset = _pending_job(web)
    sign_in(web)
    token, url = csrf_of(web), f"/projects/{project}/jobs"
    form = web.get(url + "/new").text
    assert 'name="technique"' in form and 'name="w_exact_match"' in form
    base = {"csrf": token, "base_model": "tuneyard-tiny-lm", "train_dataset_id": dataset,
            "test_functions": "exact_match",
            "p_per_device_train_batch_size": "4"}  # whole groups of num_generations (4)
    # GRPO without any weight: the reward is named as the missing field.
    bad = web.post(url, data={**base, "technique": "GRPO"})
    assert bad.status_code == 400 and "reward" in bad.text
    res = web.post(url, data={**base, "technique": "GRPO", "w_exact_match": "1",
                              "w_chrf": ""}, follow_redirects=False)
    assert res.status_code == 303, res.text
    job_id = res.headers["location"].rsplit("/", 1)[1]
    job = web.get(f"/v1/projects/{project}/training-jobs/{job_id}",
                  headers={"X-API-Key": ADMIN_KEY}).json()
    assert job["training_technique"] == "GRPO" and job["reward"] == {"exact_match": 1.0}
    # DPO needs preference records: a prompt/completion set is refused, naming why.
    bad = web.post(url, data={**base, "technique": "DPO"})
    assert bad.status_code == 400 and "preference" in bad.text
