"""Store keys: one layout, built in one module."""

from types import SimpleNamespace

from tuneyard.storage import keys

JOB = SimpleNamespace(id="tr-1", project_id="ms-1")


def test_the_layout():
    assert keys.project_prefix("ms-1") == "projects/ms-1/"
    assert keys.dataset_prefix(project_id="ms-1", dataset_id="ds-1") == \
        "projects/ms-1/datasets/ds-1/"
    assert keys.dataset_key(project_id="ms-1", dataset_id="ds-1", filename="a.jsonl") == \
        "projects/ms-1/datasets/ds-1/a.jsonl"
    assert keys.job_prefix(JOB) == "projects/ms-1/jobs/tr-1/"
    assert keys.checkpoint_prefix(JOB, number=3) == "projects/ms-1/jobs/tr-1/checkpoints/000003/"
    assert keys.archive_key(JOB, number=3) == "projects/ms-1/jobs/tr-1/checkpoints/000003.tar"
    assert keys.results_key(JOB, number=None) == "projects/ms-1/jobs/tr-1/results/baseline.jsonl"
    assert keys.details_key(JOB, number=12) == \
        "projects/ms-1/jobs/tr-1/results/000012.details.json"


def test_checkpoint_number_of_a_key():
    files = keys.checkpoint_prefix(JOB, number=7) + "state/optimizer.pt"
    assert keys.checkpoint_number_of(JOB, files) == 7
    assert keys.checkpoint_number_of(JOB, keys.archive_key(JOB, number=1000000)) == 1000000
    assert keys.checkpoint_number_of(JOB, keys.results_key(JOB, number=7)) is None
    other = SimpleNamespace(id="tr-10", project_id="ms-1")
    assert keys.checkpoint_number_of(JOB, keys.archive_key(other, number=1)) is None
