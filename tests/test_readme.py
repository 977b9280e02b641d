"""The README stays true to the code: its generated sections (CLI reference, job
parameters, settings) are current, and nothing they must cover is missing.

When one of these fails after a change to a command, a parameter or a setting,
run `.venv/bin/python docs/readme.py` and commit the README.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONTRACT = REPO.parent / "shared" / "emissary-openapi.yaml"
FIX = "the README is out of date: run `.venv/bin/python docs/readme.py` and commit README.md"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("tuneyard_docs_readme",
                                                  REPO / "docs" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.mark.parametrize("section", ["cli", "parameters", "settings"])
def test_generated_section_is_current(generator, readme, section):
    current = generator.sections(readme)
    assert section in current, f"README lost its `{section}` markers"
    assert current[section] == generator.RENDERERS[section](), FIX


def test_cli_reference_covers_every_command(generator, readme):
    section = generator.sections(readme)["cli"]
    for path in generator.command_paths():
        assert "$ " + " ".join(("tuneyard", *path, "--help")) + "\n" in section, path


def test_cli_reference_is_plain_text(generator, readme):
    section = generator.sections(readme)["cli"]
    assert "\x1b[" not in section, "colour codes leaked into the CLI reference"
    widest = max(len(line) for line in section.splitlines())
    assert widest <= generator.HELP_WIDTH + len("$ tuneyard "), widest


def test_every_setting_is_documented(readme):
    from tuneyard.config import Settings

    prefix = Settings.model_config["env_prefix"]
    missing = [f"{prefix}{name.upper()}" for name in Settings.model_fields
               if f"`{prefix}{name.upper()}`" not in readme]
    assert not missing, f"settings missing from the README: {missing}; {FIX}"


def test_every_parameter_is_documented(readme):
    from tuneyard.training.params import FIELD_HELP, TrainingParameters

    names = set(FIELD_HELP) | {f.name for f in fields(TrainingParameters)}
    missing = sorted(n for n in names if f"| `{n}` |" not in readme)
    assert not missing, f"job parameters missing from the README: {missing}; {FIX}"
    for name, text in FIELD_HELP.items():
        assert text.replace("|", "\\|") in readme, (name, FIX)


def test_quick_start_is_the_two_commands(readme):
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.DOTALL)
    assert block, "the quick start has no command block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.skipif(not CONTRACT.exists(), reason=f"{CONTRACT} is not beside the repository")
def test_every_contract_operation_is_in_the_compatibility_table(readme):
    contract = yaml.safe_load(CONTRACT.read_text())
    table = readme.split("## Emissary compatibility", 1)[1].split("\n## ", 1)[0]
    missing = []
    for path, operations in contract["paths"].items():
        for method, operation in operations.items():
            row = f"| {operation['operationId']} | `{method.upper()} {path}` |"
            if row not in table:
                missing.append(row)
    assert not missing, missing
