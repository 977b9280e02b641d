"""The installed `tuneyard` binary end to end: login, projects, datasets."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from tests.e2e.server import free_port

pytestmark = pytest.mark.slow

ROWS = [{"prompt": f"{i % 10} plus one is", "completion": f" {(i + 1) % 10}"}
        for i in range(16)]


@pytest.fixture
def data_file(cli):
    path = cli.home / "plus-one.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_login_saves_a_private_config(cli, server):
    run = cli.ok("login", "--url", server.url + "/", "--key", server.key)
    assert server.url in run.out
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    saved = json.loads(cli.config_file.read_text())
    assert saved == {"url": server.url, "api_key": server.key}


def test_login_asks_for_the_key(cli, server):
    cli.ok("login", "--url", server.url, input=server.key + "\n")
    assert json.loads(cli.config_file.read_text())["api_key"] == server.key


def test_login_with_a_key_file(cli, server):
    key_file = cli.home / "admin.key"
    key_file.write_text(server.key + "\n")
    cli.ok("login", "--url", server.url, "--key-file", str(key_file))
    assert json.loads(cli.config_file.read_text())["api_key"] == server.key


def test_login_refuses_a_bad_key(cli, server):
    run = cli.fails("login", "--url", server.url, "--key", "ty-wrong")
    assert "refused the key" in run.err
    assert not cli.config_file.exists()


def test_login_without_a_server(cli):
    run = cli.fails("login", "--url", f"http://127.0.0.1:{free_port()}", "--key", "k")
    assert "cannot reach tuneyard" in run.err and "tuneyard serve" in run.err


def test_commands_need_a_login(cli):
    run = cli.fails("projects", "list")
    assert "tuneyard login" in run.err


def test_env_overrides_the_saved_login(cli, server):
    cli.ok("login", "--url", server.url, "--key", server.key)
    run = cli.fails("projects", "list", env={"TUNEYARD_API_KEY": "ty-env-wrong"})
    assert "HTTP 401" in run.err
    # And env alone, with no config file at all, is enough.
    cli.config_file.unlink()
    cli.ok("projects", "list", env={"TUNEYARD_URL": server.url, "TUNEYARD_API_KEY": server.key})


def test_projects_and_datasets_end_to_end(logged_in, data_file):
    cli = logged_in
    project = cli.ok("projects", "create", "cli-e2e", "--quiet").out.strip()
    assert project.startswith("ms-")
    listed = cli.ok("projects", "list", "--json").json()
    assert project in {p["id"] for p in listed}
    assert project in cli.ok("projects", "list").out  # the human table, id uncut

    # No default project yet: a clear error; then --project, then `projects use`.
    assert "projects use" in cli.fails("datasets", "list").err
    uploaded = cli.ok("datasets", "upload", str(data_file), "--name", "plus-one",
                      "-p", project, "--json").json()
    assert uploaded["num_records"] == len(ROWS) and uploaded["name"] == "plus-one"
    cli.ok("projects", "use", project)

    dataset = uploaded["id"]
    assert [d["id"] for d in cli.ok("datasets", "list", "--json").json()] == [dataset]
    assert dataset in cli.ok("datasets", "list").out
    shown = cli.ok("datasets", "show", dataset, "--json").json()
    assert shown["dataset_download_url"].startswith("http")
    assert "plus-one" in cli.ok("datasets", "show", dataset).out

    out_dir = cli.home / "downloads"
    run = cli.ok("datasets", "download", dataset, "-o", f"{out_dir}/")
    target = out_dir / "plus-one.jsonl"
    assert run.out.strip() == str(target) and "sha256 verified" in run.err
    assert hashlib.sha256(target.read_bytes()).hexdigest() == uploaded["sha256"]

    detail = cli.ok("projects", "show", "--json").json()
    assert detail["id"] == project and [d["id"] for d in detail["datasets"]] == [dataset]
    assert "datasets" in cli.ok("projects", "show").out

    cli.ok("datasets", "delete", dataset, "--yes")
    assert "not found" in cli.fails("datasets", "show", dataset).err
    cli.ok("projects", "delete", project, "-y")
    assert "HTTP 404" in cli.fails("projects", "show", project).err


def test_invalid_dataset_reports_the_line(logged_in):
    cli = logged_in
    project = cli.ok("projects", "create", "bad-data", "-q").out.strip()
    bad = cli.home / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"prompt": "x"}) + "\n")
    run = cli.fails("datasets", "upload", str(bad), "-p", project)
    assert "line 2" in run.err and "HTTP 400" in run.err


def test_delete_asks_first(logged_in):
    cli = logged_in
    project = cli.ok("projects", "create", "keep-me", "-q").out.strip()
    run = cli("projects", "delete", project, input="n\n")
    assert run.code != 0 and "nothing was changed" in run.err
    cli.ok("projects", "show", project)
    cli.ok("projects", "delete", project, input="y\n")


def test_models(logged_in):
    models = logged_in.ok("models", "list", "--json").json()
    name = models[0]["name"]
    assert name in logged_in.ok("models", "list").out
    assert logged_in.ok("models", "show", name, "--json").json()["name"] == name
    assert "parameter template" in logged_in.ok("models", "show", name).out
    assert "not found" in logged_in.fails("models", "show", "no-such-model").err


def test_logout_forgets_the_key(logged_in):
    logged_in.ok("logout")
    assert "api_key" not in json.loads(logged_in.config_file.read_text())
    assert "tuneyard login" in logged_in.fails("projects", "list").err


def test_test_functions(logged_in):
    listed = logged_in("test-functions", "list", "--json")
    if "Not Found (HTTP 404)" in listed.err:
        pytest.skip("the server has no test-function routes yet")
    functions = listed.json()
    name = functions[0]["name"]
    assert name in logged_in.ok("test-functions", "list").out
    assert "def " in logged_in.ok("test-functions", "show", name).out
    assert "not found" in logged_in.fails("test-functions", "show", "no_such_fn").err
