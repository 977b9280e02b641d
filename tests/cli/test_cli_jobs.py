"""Jobs and checkpoints through the real binary: train the builtin tiny LM for one
short epoch, watch it, list and download its checkpoints."""

from __future__ import annotations

import json
import tarfile

import pytest

from .conftest import Cli

pytestmark = pytest.mark.slow

ROWS = [{"prompt": f"{i % 10} plus one is", "completion": f" {(i + 1) % 10}"}
        for i in range(16)]


@pytest.fixture(scope="module")
def user(server, tmp_path_factory):
    """A logged-in user with a default project and a dataset, shared by the module."""
    cli = Cli(home=tmp_path_factory.mktemp("jobs-user"))
    cli.ok("login", "--url", server.url, "--key", server.key)
    if "Not Found (HTTP 404)" in cli("jobs", "list", "-p", "ms-none").err:
        pytest.skip("the server has no training-job routes yet")
    project = cli.ok("projects", "create", "cli-jobs", "-q", "--use").out.strip()
    data = cli.home / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cli.dataset = cli.ok("datasets", "upload", str(data), "-q").out.strip()
    yield cli
    cli("projects", "delete", project, "-y")


def test_train_watch_list_download(user):
    cli, dataset = user, user.dataset
    created = cli.ok("jobs", "create", "-d", dataset, "-m", "tuneyard-tiny-lm", "--epochs", "1",
                     "-P", "max_seq_length=32", "--name", "cli-job", "-q", "--watch",
                     "--eval-wait", "120", timeout=360)  # the best is known once tested
    job = created.out.strip()  # with -q, stdout is only the id; the watch goes to stderr
    assert job.startswith("tr-")
    assert f"{job} Success 100%" in created.err  # one line per change, off a terminal
    assert "best checkpoint: " in created.err

    assert job in cli.ok("jobs", "list").out
    listed = cli.ok("jobs", "list", "--json").json()
    assert [j["id"] for j in listed] == [job] and listed[0]["status"] == "Success"
    shown = cli.ok("jobs", "show", job).out
    assert "hyperparameters" in shown and "max_seq_length" in shown and "checkpoints" in shown
    assert cli.ok("jobs", "show", job, "--json").json()["hyper_parameters"]["max_seq_length"] \
        == 32

    checkpoints = cli.ok("checkpoints", "list", job, "--json").json()
    assert [c["checkpoint"] for c in checkpoints] == list(range(1, len(checkpoints) + 1))

    # The job's events; --follow returns at once for an ended job.
    logs = cli.ok("jobs", "logs", job, "--follow").out
    for words in ("created", "claimed by worker", "training started on",
                  "checkpoint 1 published at step", "job succeeded"):
        assert words in logs, logs
    events = [json.loads(line) for line in cli.ok("jobs", "logs", job, "--json").out.splitlines()]
    assert [e["kind"] for e in events][:3] == ["created", "claimed", "started"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert "★" in cli.ok("checkpoints", "list", job).out

    out_dir = cli.home / "ckpt"
    run = cli.ok("checkpoints", "download", job, "1", "-o", f"{out_dir}/",
                 "--extract", str(out_dir / "model"))
    assert "sha256 verified" in run.err
    archive = out_dir / f"{job}-checkpoint-1.tar"
    with tarfile.open(archive) as tar:
        assert "checkpoint.json" in tar.getnames()
    assert (out_dir / "model" / "checkpoint.json").exists()
    assert "has no checkpoint 99" in cli.fails("checkpoints", "download", job, "99").err

    cli.ok("jobs", "delete", job, "-y")
    assert "HTTP 404" in cli.fails("jobs", "show", job).err


def test_bad_parameter_lists_the_allowed_ones(user):
    run = user.fails("jobs", "create", "-d", user.dataset, "-m", "tuneyard-tiny-lm",
                          "-P", "learning_rat=0.1")
    assert "learning_rat" in run.err and "learning_rate" in run.err


def test_cancel(user):
    cli = user
    job = cli.ok("jobs", "create", "-d", cli.dataset, "-m", "tuneyard-tiny-lm", "--epochs", "50",
                 "-P", "max_seq_length=32", "-q").out.strip()
    cli.ok("jobs", "cancel", job)
    run = cli("jobs", "watch", job, "--interval", "0.3", timeout=60)
    assert run.code == 1 and "ended Cancelled" in run.err
