"""The dashboard's read side: diffs, failures, the checkpoint table and curves, and a
classification results page (confusion matrix, failure filter) from a real evaluation."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ADMIN_KEY
from tuneyard.tables import Checkpoint, TrainingJob
from tuneyard.web import views


def test_diff_marks_words_and_escapes_html():
    html = str(views.diff_html("the cat <sat>", "the dog <sat>"))
    assert html == "the <del>cat</del> <ins>dog</ins> &lt;sat&gt;"
    assert str(views.diff_html(None, "x")) == "<del></del> <ins>x</ins>"


def test_failures_use_the_verdict_else_the_score():
    assert views.is_failure({"correct": False}) and not views.is_failure({"correct": True})
    assert views.is_failure({"correct": None, "score": 0.5})
    assert not views.is_failure({"correct": None, "score": 1.0})
    assert not views.is_failure({"correct": None, "score": None})  # nothing to judge by


def _job(**extra) -> TrainingJob:
    return TrainingJob(id="tr-x", status="Running", progress=50, best_checkpoint=2,
                       base_model="m", task_type="text-generation", created_at=1,
                       training_loss=[{"timestamp": 1.0, "loss": 3.0, "step": 1},
                                      {"timestamp": 2.0, "loss": float("nan"), "step": 2},
                                      {"timestamp": 3.0, "loss": 2.0, "step": 3}],
                       training_metrics=[{"step": 1, "learning_rate": 1e-3, "grad_norm": 2.0},
                                         {"step": 3, "learning_rate": 5e-4}],
                       baseline_test_results={"aggregated_test_result": {
                           "loss": "4.0", "exact_match": "0", "num_examples": "8"},
                           "status": "done"}, **extra)


def _checkpoint(number: int, step: int, **extra) -> Checkpoint:
    return Checkpoint(number=number, step=step, epoch=float(number), created_at=step,
                      updated_at=step, test_status=extra.pop("test_status", "done"),
                      pruned=extra.pop("pruned", False), archive_key="a", **extra)


def test_the_table_has_the_baseline_first_and_marks_best_and_pruned():
    rows = [_checkpoint(1, 3, pruned=True, test_results={"aggregated_test_result": {
                "loss": "3.5", "exact_match": "0.25"}}, eval_loss=3.5),
            _checkpoint(2, 6, test_results={"aggregated_test_result": {
                "loss": "3.0", "exact_match": "0.5", "rouge_l": "0.7"}}, eval_loss=3.0)]
    table = views.job_table(_job(), rows)
    assert [r.number for r in table.rows] == [0, 1, 2]
    assert table.metrics == ["loss", "exact_match", "rouge_l"]  # num_examples is bookkeeping
    assert [r.best for r in table.rows] == [False, False, True]
    assert table.rows[1].pruned and not table.rows[1].downloadable
    assert table.rows[2].downloadable and table.rows[2].metrics["rouge_l"] == 0.7
    curves = views.curves(_job(), rows)
    assert curves["train"] == [[1, 3], [3.0, 2.0]]  # the NaN point is left out
    assert curves["lr"] == [[1, 3], [1e-3, 5e-4]]
    assert curves["eval"] == [[3, 6], [3.5, 3.0]]
    assert curves["metrics"]["exact_match"] == [[3, 6], [0.25, 0.5]]
    assert curves["metrics"]["rouge_l"] == [[6], [0.7]]
    assert curves["final"] is False and curves["tested"] == 2


def test_the_log_tells_the_story_in_order():
    rows = [_checkpoint(1, 3, eval_loss=3.5),
            _checkpoint(2, 6, test_status="failed", test_error="boom")]
    job = _job(started_at=2, finished_at=9, attempts=1)
    job.status, job.error = "Failed", "out of memory"
    lines = views.job_log(job, rows)
    texts = [line.text for line in lines]
    assert texts[0].startswith("created") and texts[1] == "started (attempt 1)"
    assert "checkpoint 1 at step 3, eval loss 3.5000" in texts
    assert "checkpoint 2 test failed: boom" in texts
    assert texts[-1] == "finished: Failed: out of memory" and lines[-1].level == "error"


LABELS = ["negative", "positive"]
TEST = [{"text": t, "labels": [label]} for t, label in (
    ("such a lovely experience", "positive"), ("I really enjoyed it", "positive"),
    ("superb performance", "positive"), ("so good", "positive"),
    ("such a miserable experience", "negative"), ("I really disliked it", "negative"),
    ("awful performance", "negative"), ("so bad", "negative"))]


@pytest.mark.slow
def test_classification_results_page(client, app, settings, minilm):
    """The worker's baseline evaluation, done here the same way, shown by the page."""
    from sqlalchemy.orm import Session

    from tuneyard.evaluation import evaluate_checkpoint
    from tuneyard.storage import keys

    project = client.post("/v1/projects", json={"name": "cls"}).json()
    rows = "".join(json.dumps({"prompt": e["text"], "completion": {
        label: int(label in e["labels"]) for label in LABELS}}) + "\n" for e in TEST)
    dataset = client.post(f"/v1/projects/{project['id']}/datasets",
                          files={"file": ("cls.jsonl", rows)}).json()
    job = client.post(f"/v1/projects/{project['id']}/training-jobs", json={
        "base_model": "all-MiniLM-L6-v2-classifier", "train_dataset_id": dataset["id"],
        "task_type": "classification"}).json()
    result = evaluate_checkpoint(model_dir=str(minilm), task_type="classification",
                                 examples=TEST, labels=LABELS, home=settings.home)
    store = app.state.store
    with Session(app.state.engine) as db:
        row = db.get(TrainingJob, job["id"])
        results_key = keys.results_key(row, number=None)
        details_key = keys.details_key(row, number=None)
        store.put(results_key, "".join(json.dumps(r) + "\n" for r in result.rows).encode())
        store.put(details_key, json.dumps(result.details).encode())
        row.baseline_test_results = {"general_test_result_key": results_key,
                                     "details_key": details_key, "status": "done",
                                     "aggregated_test_result": result.aggregated}
        db.commit()

    client.headers.pop("X-API-Key")
    client.post("/login", data={"api_key": ADMIN_KEY})
    url = f"/projects/{project['id']}/jobs/{job['id']}/checkpoints/0/results"
    page = client.get(url)
    assert page.status_code == 200, page.text
    matrix = re.search(r'<table class="grid confusion" id="confusion">(.*?)</table>',
                       page.text, re.S).group(1)
    cells = [int(v) for v in re.findall(r'<td class="num[^"]*"[^>]*>(\d+)</td>', matrix)]
    assert cells == [n for line in result.details["confusion_matrix"] for n in line]
    assert sum(cells) == len(TEST)
    wrong = sum(1 for r in result.rows if not r["correct"])
    assert f"<strong>{wrong}</strong> of {len(TEST)} examples failed" in page.text
    failures = client.get(url, params={"failures": "true"}).text
    body = failures.split('id="results"', 1)[1]
    assert body.count("<tr class=\"fail\">") == wrong and "<tr class=\"pass\">" not in body
    # The job page shows the baseline row with its accuracy.
    job_page = client.get(f"/projects/{project['id']}/jobs/{job['id']}").text
    assert 'data-checkpoint="0"' in job_page and "accuracy" in job_page
