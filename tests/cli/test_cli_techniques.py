"""`tuneyard jobs create --technique dpo|grpo --reward NAME=WEIGHT` through the real
binary and server: the jobs are created with their technique (training them is
tests/worker's concern); bad combinations fail before any request."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tuneyard.cli import app
from tuneyard.cli.jobs import parse_reward

from .conftest import Cli

pytestmark = pytest.mark.slow

PREFERENCES = [{"prompt": f"{i} plus one is", "chosen": f" {i + 1}", "rejected": f" {i}"}
               for i in range(8)]
TASK = [{"input": f"{i} plus one is", "expected_output": f"{i + 1}"} for i in range(8)]


@pytest.fixture(scope="module")
def user(server, tmp_path_factory):
    cli = Cli(home=tmp_path_factory.mktemp("technique-user"))
    cli.ok("login", "--url", server.url, "--key", server.key)
    project = cli.ok("projects", "create", "cli-techniques", "-q", "--use").out.strip()
    for name, rows in (("prefs", PREFERENCES), ("task", TASK)):
        path = cli.home / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        setattr(cli, name, cli.ok("datasets", "upload", str(path), "-q").out.strip())
    yield cli
    cli("projects", "delete", project, "-y")


def created(cli: Cli, *args: str) -> dict:
    # One step each: the server's worker trains them in the background (cheaply),
    # and the project's deletion at the end removes them.
    return cli.ok("jobs", "create", "-m", "tuneyard-tiny-lm", "--json", "--max-steps", "1",
                  "-P", "max_seq_length=32", *args).json()


def test_dpo_and_grpo_jobs(user):
    dpo = created(user, "-d", user.prefs, "--technique", "dpo", "-P", "beta=0.2")
    assert dpo["training_technique"] == "DPO"
    grpo = created(user, "-d", user.task, "--technique", "grpo", "-t", "exact_match",
                   "--reward", "exact_match=1", "--reward", "chrf=0.5",
                   "-P", "num_generations=4", "--batch-size", "4")
    assert grpo["training_technique"] == "GRPO"
    assert grpo["reward"] == {"exact_match": 1.0, "chrf": 0.5}
    shown = user.ok("jobs", "show", grpo["id"]).out
    assert "GRPO" in shown and "exact_match=1, chrf=0.5" in shown
    # --reward alone means GRPO; the server names what is wrong.
    run = user.fails("jobs", "create", "-m", "tuneyard-tiny-lm", "-d", user.task,
                     "-t", "exact_match", "--reward", "no_such_fn=1")
    assert "reward" in run.err and "no_such_fn" in run.err
    run = user.fails("jobs", "create", "-m", "tuneyard-tiny-lm", "-d", user.task,
                     "--technique", "dpo")
    assert "train_dataset_id" in run.err and "DPO" in run.err


@pytest.mark.parametrize("args, message", [
    (["--technique", "grpo", "-t", "exact_match"], "--reward"),
    (["--reward", "exact_match=1"], "--test-function"),
    (["--technique", "dpo", "--reward", "exact_match=1"], "--reward"),
])
def test_technique_option_conflicts(tmp_path, args, message):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    result = CliRunner().invoke(app, ["jobs", "create", "-d", "ds-1", "-m", "m", "-p", "ms-1",
                                      *args], env=env)
    assert result.exit_code == 1 and message in result.stderr, result.output


@pytest.mark.parametrize("pair", ["exact_match", "=1", "exact_match=nan", "f=inf", "f=heavy"])
def test_bad_reward_syntax(pair):
    import typer

    with pytest.raises(typer.BadParameter):
        parse_reward([pair])
