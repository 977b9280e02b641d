"""Test functions: built-ins, the administrator's files, and containment of bad ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tuneyard.evaluation import functions
from tuneyard.evaluation.builtin_functions import BUILTIN_NAMES
from tuneyard.evaluation.functions import (
    apply_test_functions,
    get_test_function,
    list_test_functions,
    run_test_function,
)

CUSTOM = '''
import math
from pathlib import Path

import numpy as np

Path(__file__).with_suffix(".imported").write_text("yes")  # proves when the file ran


def length_ratio(input_text: str, expected_output: str, predicted_output: str) -> float:
    """len(predicted) / len(expected)."""
    return len(predicted_output) / max(1, len(expected_output))


def always_raises(input_text, expected_output, predicted_output):
    raise ValueError("bad example " + input_text)


def sleeps(input_text, expected_output, predicted_output):
    import time
    time.sleep(30)
    return 1.0


def not_a_number(input_text, expected_output, predicted_output):
    return "high"


def two_params(expected_output, predicted_output):
    return 0.0


def _private(input_text, expected_output, predicted_output):
    return 0.0


def exact_match(input_text, expected_output, predicted_output):
    return 42.0  # shadows a built-in: ignored
'''


@pytest.fixture
def custom_home(home: Path) -> Path:
    (home / "test_functions").mkdir()
    (home / "test_functions" / "mine.py").write_text(CUSTOM)
    return home


def test_builtins_are_listed_as_v2_documents(home):
    listed = {f.name: f for f in list_test_functions(home)}
    assert set(BUILTIN_NAMES) <= set(listed)
    for name in BUILTIN_NAMES:
        assert listed[name].builtin
        assert listed[name].content.startswith(f"def {name}(input_text: str, expected_output: str")
    assert listed["rouge_l"].dependencies == ["rouge-score"]
    assert listed["chrf"].dependencies == ["sacrebleu"]
    assert listed["exact_match"].dependencies == []


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_content_runs_on_its_own(home, name):
    """The listed source, pasted into an empty namespace, is the same function."""
    listed = {f.name: f for f in list_test_functions(home)}
    namespace: dict = {}
    exec(listed[name].content, namespace)  # noqa: S102 - our own built-in's source
    fn = get_test_function(name, home)
    for args in (("q", "the cat sat", "the cat sat"), ("q", "a, B", "b,c"), ("q", "1.5", "2")):
        assert namespace[name](*args) == fn(*args)


def test_builtin_scores():
    from rouge_score import rouge_scorer
    from sacrebleu import sentence_chrf

    from tuneyard.evaluation import builtin_functions as b

    assert b.exact_match("", " Paris\n", "Paris") == 1.0
    assert b.exact_match("", "Paris", "paris") == 0.0
    assert b.classification_match("", "Positive", " positive ") == 1.0
    assert b.classification_match("", "a, b", "B,c") == pytest.approx(1 / 3)  # Jaccard
    assert b.classification_match("", "spam", "ham") == 0.0
    # Token F1: common {the, cat} = 2; P = 2/3, R = 2/4.
    assert b.similarity("", "The cat is here", "the cat sat") == pytest.approx(2 * (2 / 3) * 0.5
                                                                             / (2 / 3 + 0.5))
    assert b.regression_mae("", "2.5", "1") == 1.5
    assert b.regression_mae("", "2.5", "n/a") is None
    want = rouge_scorer.RougeScorer(["rougeL"]).score("the cat sat", "the cat")["rougeL"].fmeasure
    assert b.rouge_l("", "the cat sat", "the cat") == pytest.approx(want)
    assert b.chrf("", "the cat sat", "the cat") == pytest.approx(
        sentence_chrf("the cat", ["the cat sat"]).score / 100)
    assert 0.0 <= b.chrf("", "abc", "xyz") <= 1.0


def test_custom_functions_listed_without_running_the_file(custom_home):
    listed = {f.name: f for f in list_test_functions(custom_home)}
    custom = {name for name, f in listed.items() if not f.builtin}
    assert custom == {"length_ratio", "always_raises", "sleeps", "not_a_number"}
    ratio = listed["length_ratio"]
    assert ratio.content.startswith("def length_ratio(")
    assert '"""len(predicted) / len(expected)."""' in ratio.content
    assert "always_raises" not in ratio.content
    assert ratio.dependencies == ["numpy"]  # math and pathlib are the standard library
    assert ratio.path == custom_home / "test_functions" / "mine.py"
    assert listed["exact_match"].builtin  # the built-in wins the clash
    assert not (custom_home / "test_functions" / "mine.imported").exists()

    fn = get_test_function("length_ratio", custom_home)
    assert (custom_home / "test_functions" / "mine.imported").exists()
    assert fn("q", "abcd", "ab") == 0.5
    assert get_test_function("exact_match", custom_home)("", "a", "a") == 1.0


def test_broken_file_is_skipped(custom_home):
    (custom_home / "test_functions" / "broken.py").write_text("def oops(:\n")
    names = {f.name for f in list_test_functions(custom_home)}
    assert "length_ratio" in names and "oops" not in names


def test_unknown_name_is_a_key_error_listing_names(custom_home):
    with pytest.raises(KeyError) as caught:
        get_test_function("nope", custom_home)
    message = str(caught.value)
    assert "nope" in message and "length_ratio" in message and "rouge_l" in message


def test_run_test_function_contains_failures():
    assert run_test_function(lambda a, b, c: 0.25, "i", "e", "p") == (0.25, None)
    assert run_test_function(lambda a, b, c: True, "i", "e", "p") == (1.0, None)
    assert run_test_function(lambda a, b, c: None, "i", "e", "p") == (None, None)

    def raises(a, b, c):
        raise RuntimeError("kaput")

    assert run_test_function(raises, "i", "e", "p") == (None, "RuntimeError: kaput")
    score, error = run_test_function(lambda a, b, c: "x", "i", "e", "p")
    assert score is None and "not a number" in error
    score, error = run_test_function(lambda a, b, c: float("nan"), "i", "e", "p")
    assert score is None and "nan" in error


def test_timeout_from_a_worker_thread_uses_a_thread():
    release = threading.Event()

    def waits(a, b, c):
        release.wait(30)
        return 1.0

    result = {}

    def call():
        started = time.monotonic()
        result["value"] = run_test_function(waits, "i", "e", "p", timeout_s=0.2)
        result["elapsed"] = time.monotonic() - started

    caller = threading.Thread(target=call)
    caller.start()
    caller.join(10)
    release.set()
    score, error = result["value"]
    assert score is None and error.startswith("timed out after 0.2 s")
    assert result["elapsed"] < 5


def test_timeout_in_a_main_thread_stops_even_a_busy_loop(tmp_path):
    """In the evaluation child (main thread, no other timer) SIGALRM interrupts the
    function itself: a CPU-bound loop that a thread could never stop ends."""
    script = textwrap.dedent("""
        import time
        from tuneyard.evaluation import limits
        from tuneyard.evaluation.functions import run_test_function

        def spins(a, b, c):
            while True:
                pass

        def swallows(a, b, c):
            try:
                while True:
                    pass
            except Exception:
                return 1.0

        assert limits._alarm_usable()
        started = time.monotonic()
        print(run_test_function(spins, "i", "e", "p", timeout_s=0.3))
        print(run_test_function(swallows, "i", "e", "p", timeout_s=0.3))
        print(run_test_function(lambda a, b, c: 0.5, "i", "e", "p", timeout_s=0.3))
        print(round(time.monotonic() - started))
        assert limits._alarm_usable()  # the handler is restored
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "(None, 'timed out after 0.3 s')"
    assert lines[1] == "(None, 'timed out after 0.3 s')"
    assert lines[2] == "(0.5, None)"
    assert int(lines[3]) <= 2


def test_apply_test_functions_scores_averages_and_contains(custom_home):
    rows = [
        {"input": "a", "expected_output": "abcd", "predicted_output": "ab"},
        {"input": "b", "expected_output": "ab", "predicted_output": "abab"},
        {"input": "c", "expected_output": 3.0, "predicted_output": 1.5},  # numbers as text
        {"input": "d", "expected_output": "x", "predicted_output": None},  # not generated
    ]
    started = time.monotonic()
    summary = apply_test_functions(
        rows=rows, names=["length_ratio", "always_raises", "sleeps", "not_a_number",
                          "regression_mae", "missing"],
        home=custom_home, timeout_s=0.2,
    )
    assert time.monotonic() - started < 10
    assert [r["test_functions"]["length_ratio"] for r in rows] == [0.5, 2.0, 1.0, None]
    assert summary["length_ratio"]["mean"] == pytest.approx((0.5 + 2.0 + 1.0) / 3)
    assert summary["length_ratio"]["scored"] == 3 and summary["length_ratio"]["errors"] == 0

    assert [r["test_functions"]["always_raises"] for r in rows] == [None] * 4
    assert rows[0]["test_function_errors"]["always_raises"] == "ValueError: bad example a"
    assert "always_raises" not in rows[3]["test_function_errors"]
    assert summary["always_raises"] == {"mean": None, "scored": 0, "errors": 3,
                                        "first_error": "ValueError: bad example a"}

    assert rows[0]["test_function_errors"]["sleeps"].startswith("timed out after 0.2 s")
    assert summary["sleeps"]["mean"] is None and summary["sleeps"]["errors"] == 3

    assert "not a number" in rows[1]["test_function_errors"]["not_a_number"]
    assert rows[2]["test_functions"]["regression_mae"] == 1.5
    assert rows[0]["test_functions"]["regression_mae"] is None  # "abcd" is no number
    assert "regression_mae" not in rows[0]["test_function_errors"]
    assert summary["regression_mae"]["mean"] == 1.5

    assert "unknown test function 'missing'" in rows[0]["test_function_errors"]["missing"]
    assert summary["missing"]["errors"] == 3


def test_repeated_timeouts_stop_calling_the_function(custom_home):
    rows = [{"input": str(i), "expected_output": "e", "predicted_output": "p"} for i in range(6)]
    started = time.monotonic()
    apply_test_functions(rows=rows, names=["sleeps"], home=custom_home, timeout_s=0.2)
    assert time.monotonic() - started < 0.2 * functions.MAX_TIMEOUTS + 2
    errors = [r["test_function_errors"]["sleeps"] for r in rows]
    assert all(e.startswith("timed out") for e in errors[:functions.MAX_TIMEOUTS])
    assert all(e.startswith("skipped") for e in errors[functions.MAX_TIMEOUTS:])
