"""Jobs and checkpoints through the client, on a real server that really trains
(the builtin 2-layer LM, one short epoch)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tuneyard.client import TrainingJob, TuneyardAPIError

from .conftest import require_route

pytestmark = pytest.mark.slow

PARAMS = {"num_train_epochs": 1, "max_seq_length": 32}


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """(client, project id, finished job) — trained once for the module."""
    from tuneyard.client import TuneyardClient

    from .conftest import ROWS, write_jsonl

    api = TuneyardClient(server.url, server.key)
    project = api.projects.create("jobs")
    data = write_jsonl(tmp_path_factory.mktemp("jobs") / "train.jsonl", ROWS)
    dataset = api.datasets.upload(project.id, data)
    job = require_route(lambda: api.jobs.create(
        project.id, base_model="tuneyard-tiny-lm", train_dataset_id=dataset.id,
        name="client-job", parameters=PARAMS))
    assert isinstance(job, TrainingJob) and job.id.startswith("tr-")
    assert job.status in ("Pending", "Running")
    finished = api.jobs.wait(project.id, job.id, poll_s=0.5, timeout_s=180)
    yield api, project.id, finished, dataset.id
    api.projects.delete(project.id)
    api.close()


def test_job_trains_to_success(trained):
    api, pid, job, dataset_id = trained
    assert job.status == "Success", job.error
    assert job.finished and job.progress == 100
    assert job.task_type == "text-generation"
    assert job.train_dataset is not None and job.train_dataset.id == dataset_id
    assert job.hyper_parameters["num_train_epochs"] == 1
    assert [j.id for j in api.jobs.list(pid)] == [job.id]


def test_checkpoints_are_numbered_with_archive_checksums(trained):
    api, pid, job, _ = trained
    checkpoints = api.jobs.checkpoints(pid, job.id)
    assert [c.checkpoint for c in checkpoints] == list(range(1, len(checkpoints) + 1))
    for ckpt in checkpoints:
        assert ckpt.model_download_url and len(ckpt.archive_sha256 or "") == 64
        assert ckpt.created_at and ckpt.step


def test_download_checkpoint_verifies_and_extracts(trained, tmp_path):
    api, pid, job, _ = trained
    last = api.jobs.checkpoints(pid, job.id)[-1]
    result = api.jobs.download_checkpoint(pid, job.id, last.checkpoint, tmp_path,
                                          extract_to=tmp_path / "model")
    assert result.path == tmp_path / f"{job.id}-checkpoint-{last.checkpoint}.tar"
    assert result.verified and result.sha256 == last.archive_sha256
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == last.archive_sha256
    manifest = json.loads((tmp_path / "model" / "checkpoint.json").read_text())
    assert manifest  # the checkpoint describes itself
    assert (tmp_path / "model" / "config.json").exists()


def test_resumed_checkpoint_download(trained, tmp_path):
    api, pid, job, _ = trained
    first = api.jobs.checkpoints(pid, job.id)[0]
    whole = api.jobs.download_checkpoint(pid, job.id, first.checkpoint, tmp_path / "a.tar")
    data = whole.path.read_bytes()
    (tmp_path / "b.tar.part").write_bytes(data[: len(data) // 2])
    resumed = api.jobs.download_checkpoint(pid, job.id, first.checkpoint, tmp_path / "b.tar")
    assert resumed.resumed_from == len(data) // 2 and resumed.verified
    assert (tmp_path / "b.tar").read_bytes() == data


def test_unknown_checkpoint_lists_the_known_ones(trained):
    api, pid, job, _ = trained
    with pytest.raises(TuneyardAPIError, match="has no checkpoint 99") as caught:
        api.jobs.checkpoint(pid, job.id, 99)
    assert caught.value.status == 404 and "1" in caught.value.message


def test_bad_parameter_is_a_400_naming_it(trained):
    api, pid, _, dataset_id = trained
    with pytest.raises(TuneyardAPIError) as caught:
        api.jobs.create(pid, base_model="tuneyard-tiny-lm", train_dataset_id=dataset_id,
                        parameters={"no_such_param": 1})
    assert caught.value.status == 400 and "no_such_param" in caught.value.message


def test_cancel_then_delete(trained):
    api, pid, _, dataset_id = trained
    job = api.jobs.create(pid, base_model="tuneyard-tiny-lm", train_dataset_id=dataset_id,
                          parameters={"num_train_epochs": 50, "max_seq_length": 32})
    api.jobs.cancel(pid, job.id)
    ended = api.jobs.wait(pid, job.id, poll_s=0.3, timeout_s=60)
    assert ended.status == "Cancelled"
    api.jobs.delete(pid, job.id)
    with pytest.raises(TuneyardAPIError) as caught:
        api.jobs.get(pid, job.id)
    assert caught.value.status == 404


def test_unknown_job_is_404(api, project):
    with pytest.raises(TuneyardAPIError) as caught:
        require_route(lambda: api.jobs.get(project.id, "tr-nope"))
    assert caught.value.status == 404 and "tr-nope" in caught.value.message
