"""The child-process entry point: request in, results files out, errors in error.txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tuneyard.evaluation import run

SPINNER = '''
def spins(input_text, expected_output, predicted_output):
    while True:  # only a signal can stop this; a thread would spin forever
        pass


def length(input_text, expected_output, predicted_output):
    return float(len(predicted_output))
'''


def _request(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(fields))
    return path


def test_child_process_writes_results_and_contains_a_runaway_function(tmp_path, tiny_lm, home):
    (home / "test_functions").mkdir()
    (home / "test_functions" / "custom.py").write_text(SPINNER)
    examples = tmp_path / "test.jsonl"
    examples.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f" a{i}"}) + "\n"
                                for i in range(4)))
    request = _request(tmp_path, model_dir=str(tiny_lm), task_type="text-generation",
                       examples_path=str(examples), home=str(home), generate_samples=2,
                       test_functions=["spins", "length"], test_function_timeout_s=0.5)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "tuneyard.evaluation.run", "--request", str(request),
         "--output-dir", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["aggregated.json", "details.json",
                                                     "results.jsonl"]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["expected_output"] for r in rows] == [" a0", " a1", " a2", " a3"]
    aggregated = json.loads((out / "aggregated.json").read_text())
    assert all(isinstance(v, str) for v in aggregated.values())
    for key in ("loss", "perplexity", "token_accuracy", "exact_match", "rouge_l", "chrf",
                "num_examples", "eval_seconds", "length", "spins"):
        float(aggregated[key])  # every value parses as a number
    assert aggregated["spins"] == "nan" and aggregated["num_examples"] == "4"
    assert rows[0]["test_function_errors"]["spins"] == "timed out after 0.5 s"
    assert rows[0]["test_functions"]["length"] == float(len(rows[0]["predicted_output"]))
    assert rows[3]["test_functions"] == {"spins": None, "length": None}  # not generated
    details = json.loads((out / "details.json").read_text())
    assert details["test_functions"]["spins"]["errors"] == 2


def test_failure_writes_error_txt_and_exits_1(tmp_path, tiny_lm, home, capsys):
    examples = tmp_path / "test.jsonl"
    examples.write_text(json.dumps({"text": "no prompt here"}) + "\n")
    out = tmp_path / "out"
    request = _request(tmp_path, model_dir=str(tiny_lm), task_type="text-generation",
                       examples_path=str(examples), home=str(home))
    assert run.main(["--request", str(request), "--output-dir", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["error.txt"]
    assert (out / "error.txt").read_text().startswith(
        "test example 1 does not fit a text-generation task")
    assert "Traceback" in capsys.readouterr().err


def test_request_problems_are_reported(tmp_path, home):
    out = tmp_path / "out"
    request = _request(tmp_path, model_dir="/nowhere", task_type="embedding",
                       examples=[{"text1": "a", "text2": "b", "score": 1.0}], home=str(home),
                       bacth_size=4)
    assert run.main(["--request", str(request), "--output-dir", str(out)]) == 1
    message = (out / "error.txt").read_text()
    assert "unknown request fields bacth_size" in message and "batch_size" in message

    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text1": "a"\n')
    request = _request(tmp_path, model_dir="/nowhere", task_type="embedding",
                       examples_path=str(bad_jsonl), home=str(home))
    assert run.main(["--request", str(request), "--output-dir", str(out)]) == 1
    assert "line 1: not valid JSON" in (out / "error.txt").read_text()
