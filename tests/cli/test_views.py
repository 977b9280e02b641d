"""The checkpoint table and `jobs watch`, fed with contract-shaped objects."""

from __future__ import annotations

import io
import json

import httpx
from rich.console import Console

from tuneyard.cli import _watch
from tuneyard.cli._checkpoints import best_checkpoint, checkpoint_table, metric_columns
from tuneyard.client import Checkpoint, TrainingJob, TuneyardClient


def ckpt(n: int, **metrics: str) -> Checkpoint:
    results = {"general_test_result": "http://x/r.jsonl",
               "aggregated_test_result": metrics} if metrics else None
    return Checkpoint(checkpoint=n, step=10 * n, epoch=float(n), test_results=results,
                      created_at=1_700_000_000)


def render(table) -> str:
    console = Console(file=io.StringIO(), width=160)
    console.print(table)
    return console.file.getvalue()


def test_best_follows_the_jobs_metric_and_direction():
    checkpoints = [ckpt(1, loss="2.0", accuracy="0.5"), ckpt(2, loss="1.0", accuracy="0.9"),
                   ckpt(3, loss="1.5", accuracy="0.7")]
    assert best_checkpoint(TrainingJob(id="tr-1"), checkpoints) == 2  # loss, lower is better
    job = TrainingJob(id="tr-1", hyper_parameters={"metric_for_best_model": "eval_accuracy"})
    assert best_checkpoint(job, checkpoints) == 2
    job = TrainingJob(id="tr-1", hyper_parameters={"metric_for_best_model": "accuracy",
                                                   "greater_is_better": False})
    assert best_checkpoint(job, checkpoints) == 1
    assert best_checkpoint(TrainingJob(id="tr-1", best_checkpoint=3), checkpoints) == 3


def test_numbers_compare_as_numbers_not_strings():
    checkpoints = [ckpt(9, loss="9.5"), ckpt(10, loss="10.5")]
    assert best_checkpoint(None, checkpoints) == 9


def test_eval_loss_ranks_until_results_land():
    checkpoints = [Checkpoint(checkpoint=1, eval_loss=2.0), Checkpoint(checkpoint=2,
                                                                       eval_loss=1.5)]
    assert best_checkpoint(None, checkpoints) == 2
    assert metric_columns(None, checkpoints) == ["eval_loss"]


def test_columns_prefer_the_tasks_main_metrics():
    job = TrainingJob(id="tr-1", task_type="classification")
    checkpoints = [ckpt(1, accuracy="0.5", loss="1", num_examples="10", macro_f1="0.4")]
    assert metric_columns(job, checkpoints) == ["loss", "accuracy", "macro_f1"]


def test_table_marks_best_and_shows_baseline():
    job = TrainingJob(id="tr-1", task_type="text-generation",
                      baseline_test_results={"aggregated_test_result": {"loss": "3.0"}})
    text = render(checkpoint_table(job, [ckpt(1, loss="2.5"), ckpt(2, loss="1.25")]))
    rows = [line for line in text.splitlines() if "│" in line]  # body rows only
    assert "base" in rows[0] and "3" in rows[0]
    assert "★" in rows[2] and "1.25" in rows[2] and "★" not in rows[1]
    assert "no checkpoints yet" in render(checkpoint_table(job, []))


def test_watch_follows_until_the_job_ends(capsys, monkeypatch):
    """Off a terminal, one line per change; returns the finished job."""
    states = iter([("Pending", 0, []), ("Running", 50, [1]), ("Running", 50, [1]),
                   ("Success", 100, [1, 2])])
    current: dict = {}

    def fake(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/checkpoints"):
            return httpx.Response(200, json=[
                {"checkpoint": n, "created_at": 1, "updated_at": 1,
                 "test_results": {"aggregated_test_result": {"loss": str(3 - n)}},
                 "model_download_url": None} for n in current["ckpts"]])
        status, progress, current["ckpts"] = next(states)
        return httpx.Response(200, json={"id": "tr-1", "name": "j", "status": status,
                                         "progress": progress, "base_model": "m",
                                         "training_loss": [{"timestamp": 1, "loss": 0.5}]})

    monkeypatch.setattr(_watch.time, "sleep", lambda s: None)
    with TuneyardClient("http://t", "k", transport=httpx.MockTransport(fake)) as api:
        job = _watch.watch_job(api, "ms-1", "tr-1", interval=0)
    assert job.status == "Success"
    lines = capsys.readouterr().out.splitlines()
    progress_lines = [line for line in lines if line.startswith("tr-1 ")]
    assert progress_lines == [
        "tr-1 Pending 0% loss 0.5; checkpoints 0 (0 tested)",
        "tr-1 Running 50% loss 0.5; checkpoints 1 (1 tested)",
        "tr-1 Success 100% loss 0.5; checkpoints 2 (2 tested)",
    ]
    assert lines[-1] == "best checkpoint: 2"
    assert json.dumps(job.to_dict())  # JSON-able for --json
