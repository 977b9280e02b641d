"""The official `openai` package against a real `tuneyard serve` whose embedded
worker really trains: upload, fine-tune with "auto", poll while reading events,
checkpoints with metrics, chat with the fine-tuned model and a checkpoint's
model name, pause/resume with contiguous checkpoints, cancel; and the
Emissary SDK on the same server sees the same job and deployment."""

from __future__ import annotations

import io
import json
import time

import httpx
import openai
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

LETTERS = "abcdefghijklmnopqrstuvwxyz01234567"  # 34 records
CHAT = "".join(json.dumps({"messages": [
    {"role": "user", "content": f"say {c}"},
    {"role": "assistant", "content": f"{c}{c}{c}"}]}) + "\n" for c in LETTERS)
# Short sequences, and a metrics event at every second step.
QUICK = {"tuneyard.max_seq_length": "64", "tuneyard.logging_steps": "2",
         "tuneyard.eval_generate_samples": "4"}
FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def oa(live_server) -> openai.OpenAI:
    with httpx.Client(trust_env=False, timeout=120) as http:
        yield openai.OpenAI(base_url=live_server.url + "/openai/v1", api_key=live_server.key,
                            http_client=http, max_retries=0)


@pytest.fixture(scope="module")
def training_file(oa):
    return oa.files.create(file=("letters.jsonl", io.BytesIO(CHAT.encode())),
                           purpose="fine-tune")


def wait(oa, job_id: str, statuses, *, timeout: float = 120, until=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = oa.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses or (until is not None and until(job)):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} is still {job.status} (wanted {statuses})")


def checkpoints(oa, job_id: str) -> list:
    """Oldest first (the API lists them newest first)."""
    return list(oa.fine_tuning.jobs.checkpoints.list(job_id, limit=100))[::-1]


def test_fine_tune_poll_and_chat_with_the_result(oa, training_file, emissary):
    job = oa.fine_tuning.jobs.create(model="tuneyard-tiny-chat", training_file=training_file.id,
                                     suffix="letters", seed=3, metadata=QUICK,
                                     hyperparameters={"n_epochs": "auto", "batch_size": "auto"})
    # 34 records: 3 epochs see 102 >= 100 examples, so 3; batches of 8 <= 34 / 4 (the
    # documented "auto" rule).
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (3, 8)
    seen: dict[str, object] = {}
    deadline = time.monotonic() + 150
    while job.status not in FINAL and time.monotonic() < deadline:
        for event in oa.fine_tuning.jobs.list_events(job.id, limit=100):
            seen.setdefault(event.id, event)
        time.sleep(0.5)
        job = oa.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    for event in oa.fine_tuning.jobs.list_events(job.id, limit=100):
        seen.setdefault(event.id, event)
    events = sorted(seen.values(), key=lambda e: int(e.id.removeprefix("ftevent-")))
    messages = [e.message for e in events]
    assert messages[0].startswith("created") and "job succeeded" in messages
    assert any(m.startswith("claimed by worker") for m in messages)
    assert any(m.startswith("training started on") for m in messages)
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics and all(m["step"] % 2 == 0 and m["train_loss"] > 0 for m in metrics)
    assert job.fine_tuned_model == f"ft:tuneyard-tiny-chat:letters:{job.id}"
    assert job.finished_at and job.trained_tokens is None

    listed = checkpoints(oa, job.id)
    assert len(listed) == 3  # one per epoch
    steps = [c.step_number for c in listed]
    assert steps == sorted(set(steps))
    for c in listed:
        assert c.object == "fine_tuning.job.checkpoint" and c.fine_tuning_job_id == job.id
        assert c.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{c.step_number}"
        assert c.metrics.train_loss > 0 and c.metrics.valid_loss > 0
    assert listed[-1].metrics.train_loss < listed[0].metrics.train_loss

    assert job.fine_tuned_model in [m.id for m in oa.models.list()]
    answer = oa.chat.completions.create(model=job.fine_tuned_model, max_tokens=4,
                                        messages=[{"role": "user", "content": "say c"}])
    assert answer.model == job.fine_tuned_model
    assert isinstance(answer.choices[0].message.content, str)
    early = listed[0].fine_tuned_model_checkpoint
    text = oa.completions.create(model=early, prompt="say d", max_tokens=3)
    assert text.model == early and isinstance(text.choices[0].text, str)

    # The Emissary SDK sees the same job and the serverless deployment made for it.
    project = next(p for p in emissary.ok("list_projects") if p["name"].startswith("OpenAI"))
    detail = emissary.ok("get_training_job", project["id"], job.id)
    assert detail["status"] == "Success"
    deployment = next(d for d in emissary.ok("list_deployments", project["id"])
                      if d["name"] == job.fine_tuned_model)
    reply = emissary.ok("chat_completions", project["id"], deployment["id"],
                        {"messages": [{"role": "user", "content": "say e"}],
                         "max_new_tokens": 3})
    assert reply


def test_pause_resume_keeps_checkpoints_contiguous_then_cancel(oa, training_file):
    job = oa.fine_tuning.jobs.create(model="tuneyard-tiny-chat", training_file=training_file.id,
                                     metadata=QUICK, hyperparameters={"n_epochs": 20,
                                                                      "batch_size": 8})
    wait(oa, job.id, FINAL, until=lambda j: j.status == "running" and checkpoints(oa, j.id))
    paused = oa.fine_tuning.jobs.pause(job.id)
    assert paused.status in ("running", "paused")
    paused = wait(oa, job.id, ("paused", *FINAL))
    assert paused.status == "paused"
    before = [(c.id, c.step_number) for c in checkpoints(oa, job.id)]
    time.sleep(1)
    # Nothing trains while paused (evaluation may still fill in metrics).
    assert [(c.id, c.step_number) for c in checkpoints(oa, job.id)] == before

    assert oa.fine_tuning.jobs.resume(job.id).status == "queued"
    wait(oa, job.id, FINAL, until=lambda j: len(checkpoints(oa, j.id)) > len(before))
    cancelled = oa.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in ("running", "cancelled")
    assert wait(oa, job.id, FINAL).status == "cancelled"

    after = checkpoints(oa, job.id)
    numbers = [int(c.id.rsplit("-", 1)[1]) for c in after]
    assert numbers == list(range(1, len(after) + 1))  # numbering continues
    steps = [c.step_number for c in after]
    assert steps == sorted(set(steps))  # no step trained twice
    assert [(c.id, c.step_number) for c in after[:len(before)]] == before
    started = [e.data for e in oa.fine_tuning.jobs.list_events(job.id, limit=100)
               if e.message.startswith("training started")]
    # Newest first: the resumed run starts at the step of the pause's checkpoint.
    assert started[0]["resumed_step"] == before[-1][1]
    assert started[0]["resumed_from"] == len(before)
