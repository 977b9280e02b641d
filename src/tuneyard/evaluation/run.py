"""Process entry point: `python -m tuneyard.evaluation.run --request R --output-dir D`.

The request is a JSON object of `evaluate_checkpoint`'s keyword arguments,
with the test examples given as a JSONL file path (`examples_path`, or
`examples` as a string; an inline list is accepted too). On success it writes
`D/results.jsonl` (one row per example), `D/details.json` and, last,
`D/aggregated.json`, each atomically (temp file, fsync, rename), and exits 0:
a reader that sees aggregated.json sees complete results. On any failure it
writes the message to `D/error.txt` (atomically), the traceback to stderr, and
exits 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

RESULTS, AGGREGATED = "results.jsonl", "aggregated.json"
DETAILS, ERROR = "details.json", "error.txt"


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_jsonl(path: Path) -> list[dict]:
    examples = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                examples.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path} line {number}: not valid JSON ({exc})") from None
    return examples


def load_request(path: Path) -> dict:
    """The evaluate_checkpoint keyword arguments the request file describes."""
    from tuneyard.evaluation.evaluate import evaluate_checkpoint

    request = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(request, dict):
        raise ValueError(f"{path}: the request must be a JSON object")
    examples = request.pop("examples_path", None) or request.pop("examples", None)
    if isinstance(examples, str):
        examples = read_jsonl(Path(examples))
    if not isinstance(examples, list):
        raise ValueError(f"{path}: give the test examples as examples_path (a JSONL file)")
    allowed = set(inspect.signature(evaluate_checkpoint).parameters) - {"examples"}
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown request fields {', '.join(unknown)}; "
                         f"allowed: examples_path, {', '.join(sorted(allowed))}")
    request["examples"] = examples
    request["home"] = Path(request.get("home") or Path.home() / ".tuneyard")
    return request


def _message(exc: BaseException) -> str:
    if type(exc).__name__ == "OutOfMemoryError":
        return ("evaluation ran out of memory: lower the evaluation batch size "
                "(per_device_eval_batch_size) or max_seq_length")
    if isinstance(exc, ValueError | KeyError | FileNotFoundError):
        return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneyard.evaluation.run",
                                     description="Evaluate one checkpoint on a test set.")
    parser.add_argument("--request", required=True, type=Path, help="request JSON file")
    parser.add_argument("--output-dir", required=True, type=Path, help="where results go")
    args = parser.parse_args(argv)
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    for name in (RESULTS, DETAILS, AGGREGATED, ERROR):
        (out / name).unlink(missing_ok=True)  # a rerun never leaves a mix of two runs
    try:
        from tuneyard.evaluation.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(**load_request(args.request))
        lines = "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n"
                        for row in result.rows)
        _write_atomically(out / RESULTS, lines)
        _write_atomically(out / DETAILS, json.dumps(result.details, indent=2, allow_nan=False))
        _write_atomically(out / AGGREGATED, json.dumps(result.aggregated, indent=2))
    except BaseException as exc:  # noqa: BLE001 - every failure is reported the same way
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            raise
        traceback.print_exc(file=sys.stderr)
        _write_atomically(out / ERROR, _message(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
