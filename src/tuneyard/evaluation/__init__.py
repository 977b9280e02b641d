"""Evaluating checkpoints: test functions, metrics, and `evaluate_checkpoint`.

Importing this package (or `functions`, which the API server uses to list and
validate test functions) loads no torch; `evaluate_checkpoint` imports the
model libraries when first called. The worker calls it from the job's
evaluation process (`tuneyard.worker.evaluate`), never inside training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.evaluation.functions import (
    TestFunction,
    get_test_function,
    list_test_functions,
    run_test_function,
)

if TYPE_CHECKING:
    from tuneyard.evaluation.evaluate import EvaluationResult, evaluate_checkpoint

__all__ = [
    "EvaluationResult", "TestFunction", "evaluate_checkpoint", "get_test_function",
    "list_test_functions", "run_test_function",
]


def __getattr__(name: str) -> Any:
    if name in ("evaluate_checkpoint", "EvaluationResult"):
        from tuneyard.evaluation import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
