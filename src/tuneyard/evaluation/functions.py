"""Test functions: the registry (built-ins + an administrator's files) and running
them safely over evaluation rows.

A test function is Emissary's documented model: a named Python function
`f(input_text: str, expected_output: str, predicted_output: str) -> float`.
Custom ones come only from `*.py` files an administrator puts in
`<home>/test_functions/`: every top-level public function with exactly three
positional parameters. Code from API requests is never run.

Listing (what the API server does) reads those files with `ast` and executes
nothing; only `get_test_function`, called in the evaluation process, imports a
file. Built-ins win a name clash; between files, the first file (sorted by
name) wins. Each clash is logged.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tuneyard.evaluation import builtin_functions
from tuneyard.evaluation.builtin_functions import BUILTIN_DEPENDENCIES, BUILTIN_NAMES
from tuneyard.evaluation.limits import call_with_time_limit

log = logging.getLogger(__name__)

FUNCTIONS_DIR = "test_functions"
# A function that times out this often is not called again in one evaluation:
# the evaluation's duration stays bounded (and, with the thread fallback, so
# does the number of runaway threads).
MAX_TIMEOUTS = 3


@dataclass
class TestFunction:
    """One listed test function, as Emissary v2's TestingFunctionSummary (+ builtin)."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    content: str
    """The function's source text."""
    dependencies: list[str] = field(default_factory=list)
    """pip names of what its file imports beyond the standard library (best effort)."""
    builtin: bool = False
    path: Path | None = None
    """The file a custom function lives in; None for built-ins."""


def _builtins() -> list[TestFunction]:
    return [
        TestFunction(
            name=name,
            content=inspect.getsource(getattr(builtin_functions, name)),
            dependencies=list(BUILTIN_DEPENDENCIES.get(name, [])),
            builtin=True,
        )
        for name in BUILTIN_NAMES
    ]


def _pip_name(module: str, distributions: dict[str, list[str]]) -> str | None:
    top = module.split(".")[0]
    if not top or top in sys.stdlib_module_names or top in ("__future__", "tuneyard"):
        return None
    # An installed module maps to its distribution (e.g. sklearn -> scikit-learn);
    # otherwise the module name is the best guess there is.
    name = (distributions.get(top) or [top])[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    # Scanning every installed distribution takes a while; the API server lists
    # test functions per request, and what is installed does not change under it.
    import importlib.metadata

    return importlib.metadata.packages_distributions()


def _dependencies(tree: ast.Module) -> list[str]:
    distributions = _distributions()
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    names = {_pip_name(m, distributions) for m in modules}
    return sorted(n for n in names if n)


def _is_test_function(node: ast.stmt) -> bool:
    if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
        return False
    args = node.args
    required_kwonly = [d for d in args.kw_defaults if d is None]
    return len(args.posonlyargs) + len(args.args) == 3 and not required_kwonly


def _scan_file(path: Path) -> list[TestFunction]:
    """The test functions a file defines, read without executing it."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        log.warning("test function file %s is skipped: %s", path, exc)
        return []
    lines = source.splitlines(keepends=True)
    dependencies = _dependencies(tree)
    found = []
    for node in tree.body:
        if not _is_test_function(node):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        content = "".join(lines[first - 1:node.end_lineno])
        found.append(TestFunction(name=node.name, content=content,
                                  dependencies=dependencies, path=path))
    return found


def list_test_functions(home: Path) -> list[TestFunction]:
    """Built-ins first, then the administrator's functions (files sorted by name)."""
    functions = _builtins()
    seen = {f.name: f for f in functions}
    directory = Path(home) / FUNCTIONS_DIR
    files = sorted(directory.glob("*.py")) if directory.is_dir() else []
    for path in files:
        for function in _scan_file(path):
            if function.name in seen:
                other = seen[function.name]
                where = "a built-in" if other.builtin else f"also defined in {other.path}"
                log.warning("test function %r in %s is ignored: %s", function.name, path, where)
                continue
            seen[function.name] = function
            functions.append(function)
    return functions


# Imported custom modules by (path, mtime, size): a file the administrator
# edits is imported afresh, an unchanged one only once per process.
_MODULES: dict[tuple[str, int, int], object] = {}


def _import_file(path: Path):
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _MODULES:
        return _MODULES[key]
    digest = hashlib.sha256(key[0].encode()).hexdigest()[:12]
    module_name = f"_tuneyard_test_functions_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import test function file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _MODULES[key] = module
    return module


def get_test_function(name: str, home: Path) -> Callable[[str, str, str], float]:
    """The callable for `name`. Unknown → KeyError listing the available names.

    A custom function's file is imported here (its import errors propagate).
    """
    listed = {f.name: f for f in list_test_functions(home)}
    if name not in listed:
        available = ", ".join(sorted(listed))
        raise KeyError(f"unknown test function {name!r}; available: {available}")
    function = listed[name]
    if function.builtin:
        return getattr(builtin_functions, name)
    fn = getattr(_import_file(function.path), name, None)
    if not callable(fn):
        raise KeyError(f"test function {name!r} is not callable after importing {function.path}")
    return fn


def _as_score(value) -> tuple[float | None, str | None]:
    if value is None:
        return None, None  # the function's own "no score for this example"
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None, f"returned {type(value).__name__}, not a number"
    if not math.isfinite(score):
        return None, f"returned {score}"
    return score, None


def run_test_function(
    fn: Callable, input_text: str, expected_output: str, predicted_output: str,
    *, timeout_s: float = 5.0,
) -> tuple[float | None, str | None]:
    """(score, None), or (None, why) when `fn` raised, timed out or returned a non-number.

    Never raises for what `fn` does (see `limits` for how the time limit is
    enforced and where it cannot be).
    """
    ok, value, error = call_with_time_limit(
        fn, (input_text, expected_output, predicted_output), timeout_s=timeout_s
    )
    if not ok:
        return None, error
    return _as_score(value)


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def apply_test_functions(
    *, rows: list[dict], names: Iterable[str], home: Path, timeout_s: float = 5.0,
) -> dict[str, dict]:
    """Score every row with each named function, in place; return a summary per name.

    Each row gets `test_functions: {name: score | None}` and
    `test_function_errors: {name: message}` (only failures). A row whose
    `predicted_output` is None (text generation beyond the generated samples)
    is not scored. Summary: {mean, scored, errors, first_error}; `mean` is over
    the scored rows (None when none). A function that cannot be loaded scores
    every row None with the reason; it never stops the evaluation.
    """
    names = list(dict.fromkeys(names))
    summary: dict[str, dict] = {}
    for row in rows:
        row.setdefault("test_functions", {})
        row.setdefault("test_function_errors", {})
    for name in names:
        try:
            fn, load_error = get_test_function(name, home), None
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop evaluation
            fn, load_error = None, f"could not load: {exc}"
        scores, errors, timeouts = [], 0, 0
        first_error = load_error
        for row in rows:
            if row.get("predicted_output") is None:
                row["test_functions"][name] = None
                continue
            if load_error is not None:
                score, error = None, load_error
            elif timeouts >= MAX_TIMEOUTS:
                score, error = None, f"skipped: timed out {MAX_TIMEOUTS} times in this evaluation"
            else:
                score, error = run_test_function(
                    fn, _text(row.get("input")), _text(row.get("expected_output")),
                    _text(row.get("predicted_output")), timeout_s=timeout_s,
                )
                if error and error.startswith("timed out"):
                    timeouts += 1
            row["test_functions"][name] = score
            if error is not None:
                row["test_function_errors"][name] = error
                errors += 1
                first_error = first_error or error
            elif score is not None:
                scores.append(score)
        summary[name] = {
            "mean": sum(scores) / len(scores) if scores else None,
            "scored": len(scores),
            "errors": errors,
            "first_error": first_error,
        }
    return summary
