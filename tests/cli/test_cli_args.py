"""Argument handling, in-process with typer's CliRunner: no server needed, since
every one of these must fail (or print help) before any request is sent."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from tuneyard.cli import app
from tuneyard.cli.jobs import parse_params

runner = CliRunner()


@pytest.fixture
def env(tmp_path):
    """No login, no project: a fresh user."""
    return {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "TUNEYARD_URL": None, "TUNEYARD_API_KEY": None, "TUNEYARD_PROJECT": None}


def invoke(env, *args: str):
    return runner.invoke(app, list(args), env=env)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _all_commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            yield from _all_commands(command, prefix + (name,))


def test_every_command_has_help(env):
    root = typer.main.get_command(app)
    commands = list(_all_commands(root))
    expected = {("login",), ("logout",), ("serve",), ("worker",), ("keys", "create"),
                ("db", "upgrade"), ("models", "show"), ("test-functions", "show"),
                ("projects", "use"), ("datasets", "download"), ("jobs", "watch"),
                ("checkpoints", "download"), ("deployments", "reactivate"), ("complete",),
                ("chat",), ("classify",), ("embed",)}
    assert expected <= set(commands)
    for command in commands:
        result = invoke(env, *command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_help_imports_no_heavy_modules():
    # A fresh interpreter, as `tuneyard --help` runs: what does it import?
    heavy = ("torch", "transformers", "httpx", "sqlalchemy", "fastapi", "tuneyard.client")
    code = ("import sys, runpy; sys.argv = ['tuneyard', '--help']\n"
            "try:\n    runpy.run_module('tuneyard.cli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print('loaded:' + ','.join(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "loaded:"


def test_not_logged_in(env):
    line = one_error_line(invoke(env, "projects", "list"))
    assert "tuneyard login" in line


def test_no_project(env):
    line = one_error_line(invoke(env | {"TUNEYARD_API_KEY": "k"}, "datasets", "list"))
    assert "--project" in line and "projects use" in line


def test_missing_required_option_is_a_usage_error(env):
    result = invoke(env, "jobs", "create", "-m", "tuneyard-tiny-lm", "-p", "ms-1")
    assert result.exit_code == 2 and "--train" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--from-job", "tr-1"], "--checkpoint"),
    (["--from-job", "tr-1", "--checkpoint", "2", "-m", "m"], "--base-model"),
    (["--checkpoint", "2", "-m", "m"], "--from-job"),
    ([], "--base-model"),
])
def test_jobs_create_option_conflicts(env, args, message):
    line = one_error_line(invoke(env, "jobs", "create", "-d", "ds-1", "-p", "ms-1", *args))
    assert message in line


def test_bad_param_syntax(env):
    result = invoke(env, "jobs", "create", "-d", "ds-1", "-m", "m", "-p", "ms-1",
                    "--param", "no-equals-sign")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


def test_bad_choice(env):
    result = invoke(env, "jobs", "create", "-d", "ds-1", "-m", "m", "--task-type", "poetry")
    assert result.exit_code == 2 and "poetry" in result.stderr


def test_checkpoint_number_must_be_an_int(env):
    result = invoke(env, "checkpoints", "download", "tr-1", "two", "-p", "ms-1")
    assert result.exit_code == 2


def test_deployment_checkpoint_word(env):
    line = one_error_line(invoke(env, "deployments", "create", "-j", "tr-1", "-c", "great"))
    assert "best" in line and "latest" in line


def test_upload_missing_file(env, tmp_path):
    result = invoke(env, "datasets", "upload", str(tmp_path / "nope.jsonl"), "-p", "ms-1")
    flat = re.sub(r"[\s│]+", " ", result.stderr)  # the message may wrap inside a box
    assert result.exit_code == 2 and "does not exist" in flat


def test_login_rejects_a_non_http_url(env):
    line = one_error_line(invoke(env, "login", "--url", "ftp://x", "--key", "k"))
    assert "http://" in line


def test_parse_params_types():
    assert parse_params(["learning_rate=2e-4", "num_train_epochs=3", "use_lora=true",
                         "lr_scheduler_type=cosine", "name=[1", " seed = 7"]) == {
        "learning_rate": 2e-4, "num_train_epochs": 3, "use_lora": True,
        "lr_scheduler_type": "cosine", "name": "[1", "seed": 7}
    assert parse_params(["x=null", "y=[1,2]"]) == {"x": "null", "y": "[1,2]"}
