"""Regenerate the reference in docs/ from the code: `python docs/generate.py`.

Three sections sit between `<!-- BEGIN GENERATED: name -->` and
`<!-- END GENERATED: name -->` markers, each in its own file under docs/, and
are rewritten here, never by hand:

- `parameters` (docs/parameters.md): the job parameters, from
  `tuneyard.training.params` (names, defaults, allowed values, and
  `FIELD_HELP`, the fields' docstrings);
- `settings` (docs/settings.md): every `TUNEYARD_*` server setting, from
  `tuneyard.config.Settings` (defaults and the fields' docstrings);
- `cli` (docs/cli.md): `tuneyard … --help` for every command, run as a user
  would, with a fixed width (COLUMNS=100) and no colour (TERM=dumb, NO_COLOR),
  so the text is the same on every machine.

The prose around the markers is written by hand. `python docs/generate.py
--check` changes nothing and exits 1 when a section is out of date, missing,
or found in another file than its own (tests/test_readme.py checks the same).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import MISSING, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
HELP_WIDTH = 100
MARKER = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)",
                    re.DOTALL)


# --- job parameters -------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _allowed(meta: dict) -> str:
    if "choices" in meta:
        return ", ".join(f"`{c}`" for c in meta["choices"])
    bounds = []
    for key, op in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
        if key in meta:
            bounds.append(f"{op} {meta[key]}")
    text = " and ".join(bounds)
    if meta.get("also"):
        text += " (or " + ", ".join(str(v) for v in meta["also"]) + ")"
    return text


def render_parameters() -> str:
    from tuneyard.training.params import FIELD_HELP, TrainingParameters

    rows = ["| parameter | default | allowed | what it does |", "|---|---|---|---|"]
    for f in fields(TrainingParameters):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `{f.name}` | {shown} | {_cell(_allowed(dict(f.metadata)))} | "
                    f"{_cell(FIELD_HELP.get(f.name, ''))} |")
    return "\n".join(rows) + "\n"


# --- settings -------------------------------------------------------------------------------


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal right below it in the class body."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def render_settings() -> str:
    from tuneyard.config import Settings

    docs = _attribute_docstrings(Settings)
    prefix = Settings.model_config.get("env_prefix", "TUNEYARD_")
    home = str(Path.home())
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if default is None:
            shown = "unset"
        else:
            shown = f"`{str(default).replace(home, '~')}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {_cell(docs.get(name, ''))} |")
    return "\n".join(rows) + "\n"


# --- CLI reference --------------------------------------------------------------------------


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group, depth first, in the order `--help` lists them."""
    import typer

    from tuneyard.cli import app

    paths: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if hasattr(command, "list_commands"):  # a group (typer ships its own click)
            ctx = command.context_class(command, info_name=path[-1] if path else "tuneyard")
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def help_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "CLICOLOR_FORCE")}
    env.update(COLUMNS=str(HELP_WIDTH), TERMINAL_WIDTH=str(HELP_WIDTH), LINES="50",
               TERM="dumb", NO_COLOR="1", _TYPER_FORCE_DISABLE_TERMINAL="1")
    return env


# Runs in a child process, so that the width and colour settings above are in
# force from the start (typer and rich read some of them at import): every
# `--help` of the list, exactly as the command prints it, in one JSON object.
_HELP_CHILD = """
import io, json, sys
from contextlib import redirect_stdout
from tuneyard.cli import app
texts = {}
for path in json.loads(sys.stdin.read()):
    buf = io.StringIO()
    with redirect_stdout(buf):
        try:
            app(args=[*path, "--help"], prog_name="tuneyard", standalone_mode=False)
        except SystemExit:
            pass
    texts[" ".join(path)] = buf.getvalue()
sys.stdout.write(json.dumps(texts))
"""


def help_texts(paths: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """`tuneyard PATH --help` for each path, as printed, trailing spaces trimmed."""
    proc = subprocess.run([sys.executable, "-c", _HELP_CHILD], input=json.dumps(paths),
                          capture_output=True, text=True, env=help_env(), timeout=300,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"rendering `--help` failed ({proc.returncode}):\n{proc.stderr}")
    raw = json.loads(proc.stdout)
    texts = {}
    for path in paths:
        lines = [line.rstrip() for line in raw[" ".join(path)].splitlines()]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise RuntimeError(f"`tuneyard {' '.join(path)} --help` printed nothing")
        texts[path] = "\n".join(lines) + "\n"
    return texts


def render_cli() -> str:
    paths = command_paths()
    texts = help_texts(paths)
    parts = []
    groups: dict[str, list[tuple[str, ...]]] = {}
    for path in paths[1:]:
        groups.setdefault(path[0], []).append(path)
    parts.append(f"```text\n$ tuneyard --help\n{texts[()]}```\n")
    for top, members in groups.items():
        label = f"tuneyard {top}" + (" …" if len(members) > 1 else "")
        parts.append(f"<details><summary><code>{label}</code></summary>\n")
        for path in members:
            parts.append(f"```text\n$ tuneyard {' '.join(path)} --help\n{texts[path]}```\n")
        parts.append("</details>\n")
    return "\n".join(parts)


# --- the files ------------------------------------------------------------------------------

RENDERERS = {"parameters": render_parameters, "settings": render_settings, "cli": render_cli}
# The one file each generated section lives in.
HOMES = {"parameters": DOCS / "parameters.md", "settings": DOCS / "settings.md",
         "cli": DOCS / "cli.md"}


def sections(text: str) -> dict[str, str]:
    """The generated sections as they are in `text`."""
    return {m.group(2): m.group(3) for m in MARKER.finditer(text)}


def markdown_files() -> list[Path]:
    """Every file that could hold a generated section: the README and docs/*.md."""
    return [README, *sorted(DOCS.glob("*.md"))]


def misplaced() -> list[str]:
    """Problems with where the markers are: unknown names, a section outside its
    home file or missing from it, a section written twice."""
    problems = []
    for path in markdown_files():
        names = [m.group(2) for m in MARKER.finditer(path.read_text(encoding="utf-8"))]
        for name in names:
            if name not in HOMES:
                problems.append(f"{path.relative_to(REPO)}: unknown generated section `{name}`")
            elif HOMES[name] != path:
                problems.append(f"{path.relative_to(REPO)}: section `{name}` belongs in "
                                f"{HOMES[name].relative_to(REPO)}")
            elif names.count(name) > 1:
                problems.append(f"{path.relative_to(REPO)}: section `{name}` appears twice")
    for name, home in HOMES.items():
        if not home.exists() or name not in sections(home.read_text(encoding="utf-8")):
            problems.append(f"{home.relative_to(REPO)}: no markers for section `{name}`")
    return sorted(set(problems))


def regenerate(text: str, names: tuple[str, ...] = tuple(RENDERERS)) -> str:
    """`text` with the named sections rendered afresh (others left as they are)."""
    missing = set(names) - set(sections(text))
    if missing:
        raise ValueError(f"no markers for: {', '.join(sorted(missing))}")
    fresh = {name: RENDERERS[name]() for name in names}

    def replace(match: re.Match) -> str:
        name = match.group(2)
        body = fresh.get(name, match.group(3))
        return f"{match.group(1)}{body}{match.group(4)}"

    return MARKER.sub(replace, text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    problems = misplaced()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    stale = []
    for path in sorted(set(HOMES.values())):
        current = path.read_text(encoding="utf-8")
        names = tuple(name for name, home in HOMES.items() if home == path)
        updated = regenerate(current, names)
        if updated == current:
            continue
        stale.append(path.relative_to(REPO))
        if not check:
            path.write_text(updated, encoding="utf-8")
    if not stale:
        print("docs/ is up to date")
        return 0
    if check:
        print(f"out of date: {', '.join(map(str, stale))}; run "
              "`.venv/bin/python docs/generate.py`", file=sys.stderr)
        return 1
    print(f"regenerated: {', '.join(map(str, stale))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
