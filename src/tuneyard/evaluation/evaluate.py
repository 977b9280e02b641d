"""Evaluate one checkpoint (or the base model, as the baseline) on a test set.

`evaluate_checkpoint` loads the model, predicts every example, scores the
selected test functions and returns the per-example rows (the
`general_test_result` JSONL) and the aggregated metrics (the contract's
`aggregated_test_result`, strings). It touches no DB or store; the worker
calls it from the job's evaluation process (`tuneyard.worker.evaluate`).

Every row has the keys `index, input, expected_output, predicted_output,
loss, score, correct, test_functions, test_function_errors` (plus a few per
task, see each task module); non-finite numbers become null so each row is
strict JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tuneyard.evaluation.builtin_functions import BUILTIN_NAMES
from tuneyard.evaluation.functions import apply_test_functions
from tuneyard.evaluation.metrics import format_metric

TASK_TYPES = ("text-generation", "classification", "regression", "embedding")
# What each task's record needs (the task forms of tuneyard.data.tasks).
REQUIRED = {
    "classification": ("text", "labels"),
    "regression": ("text", "value"),
    "embedding": ("text1", "text2", "score"),
}


@dataclass
class EvaluationResult:
    rows: list[dict]
    """One per example, in the order given."""
    aggregated: dict[str, str]
    """Metric name -> value formatted by `format_metric`."""
    details: dict = field(default_factory=dict)
    """What does not fit a flat dict of strings: classification `labels`,
    `per_class` and `confusion_matrix` (or multi-label `confusion`), text
    generation `generated_samples`, each test function's summary under
    `test_functions`, and `fresh_head` for classification/regression."""


def _check_examples(task_type: str, examples: Sequence[dict], technique: str = "SFT") -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; "
                         f"expected one of {', '.join(TASK_TYPES)}")
    if not examples:
        raise ValueError("no test examples to evaluate")
    for number, example in enumerate(examples, start=1):
        if not isinstance(example, dict):
            raise ValueError(f"test example {number} is not an object")
        if technique == "DPO":
            ok = all(key in example for key in ("prompt", "chosen", "rejected"))
            needed = "prompt, chosen and rejected"
        elif task_type == "text-generation":
            ok = "messages" in example or ("prompt" in example and "completion" in example)
            needed = "prompt and completion, or messages"
        else:
            ok = all(key in example for key in REQUIRED[task_type])
            needed = ", ".join(REQUIRED[task_type])
        if not ok:
            raise ValueError(f"test example {number} does not fit a {task_type} task: "
                             f"it needs {needed} (found: {', '.join(sorted(example)) or 'none'})")


def _finite(value):
    """Rows are written as strict JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _predict(*, model_dir: str, task_type: str, examples: list[dict], labels, multi_label: bool,
             generate_samples: int, max_seq_length: int, batch_size: int,
             base_model_path: str | None, technique: str = "SFT") -> tuple[list[dict], dict, dict]:
    """(rows, metrics as floats, details) for the task. Heavy imports happen here."""
    from tuneyard.evaluation import loading

    loading.quiet_libraries()
    if technique == "DPO":
        from tuneyard.evaluation.preference import evaluate_preferences

        model, tokenizer = loading.load_causal_lm(model_dir, base_model_path=base_model_path)
        return evaluate_preferences(
            model=model, tokenizer=tokenizer, examples=examples,
            generate_samples=generate_samples, max_seq_length=max_seq_length,
            batch_size=batch_size,
        )
    if task_type == "text-generation":
        from tuneyard.evaluation.textgen import evaluate_text_generation

        model, tokenizer = loading.load_causal_lm(model_dir, base_model_path=base_model_path)
        return evaluate_text_generation(
            model=model, tokenizer=tokenizer, examples=examples,
            generate_samples=generate_samples, max_seq_length=max_seq_length,
            batch_size=batch_size,
        )
    from tuneyard.evaluation import sequence

    if task_type == "embedding":
        model = loading.load_sentence_model(model_dir, base_model_path=base_model_path,
                                            max_seq_length=max_seq_length)
        cosines = sequence.cosine_scores(model, examples, batch_size=batch_size)
        return sequence.embedding_results(examples=examples, cosines=cosines)
    regression = task_type == "regression"
    model, tokenizer, labels, fresh = loading.load_sequence_model(
        model_dir, labels=labels, multi_label=multi_label, regression=regression,
        base_model_path=base_model_path,
    )
    logits = sequence.predict_logits(model, tokenizer, [e["text"] for e in examples],
                                     batch_size=batch_size, max_seq_length=max_seq_length)
    if regression:
        rows, values, details = sequence.regression_results(examples=examples,
                                                            predictions=logits[:, 0])
    else:
        rows, values, details = sequence.classification_results(
            examples=examples, logits=logits, labels=labels, multi_label=multi_label)
    return rows, values, {**details, "fresh_head": fresh}


def evaluate_checkpoint(
    *,
    model_dir: str,
    task_type: str,
    examples: list[dict],
    labels: list[str] | None = None,
    multi_label: bool = False,
    test_functions: Sequence[str] = (),
    home: Path,
    generate_samples: int = 32,
    max_seq_length: int = 512,
    batch_size: int = 8,
    base_model_path: str | None = None,
    test_function_timeout_s: float = 5.0,
    technique: str = "SFT",
    reward: dict[str, float] | None = None,
) -> EvaluationResult:
    """Evaluate `model_dir` on `examples` (task-form records; see the module docstring).

    `labels` (classification, id order) default to the checkpoint's manifest
    or head; for a base model (the baseline) a fresh seeded head is made with
    them. `base_model_path` locates a LoRA adapter's base. A DPO job's examples are
    preference pairs (`evaluation.preference`: preference accuracy); a GRPO job's
    `reward` (function -> weight) adds the `reward` metric, the weighted sum of
    those functions' means, which its functions are run for. Raises ValueError for
    a request that cannot be evaluated; a test function's failure never raises.
    """
    started = time.monotonic()
    examples = list(examples)
    _check_examples(task_type, examples, technique)
    if batch_size < 1 or max_seq_length < 2:
        raise ValueError("batch_size must be >= 1 and max_seq_length >= 2")
    rows, values, details = _predict(
        model_dir=str(model_dir), task_type=task_type, examples=examples, labels=labels,
        multi_label=multi_label, generate_samples=generate_samples,
        max_seq_length=max_seq_length, batch_size=batch_size,
        base_model_path=base_model_path, technique=technique,
    )
    weights = {name: w for name, w in (reward or {}).items() if w}
    names = list(dict.fromkeys([*test_functions, *weights]))
    summary = apply_test_functions(rows=rows, names=names, home=Path(home),
                                   timeout_s=test_function_timeout_s)
    aggregated = {name: format_metric(value) for name, value in values.items()}
    aggregated["num_examples"] = format_metric(len(rows))
    for name, info in summary.items():
        if name in aggregated and name in BUILTIN_NAMES:
            # Text generation's exact_match/rouge_l/chrf metrics ARE the means of
            # these built-ins over the generated rows: the key already holds it.
            continue
        # A custom function named like a metric must not overwrite it.
        key = name if name not in aggregated else f"test_function:{name}"
        aggregated[key] = format_metric(info["mean"])
    if weights:
        # As training rewards a completion: an unscored row adds 0 (training.reward).
        scored = [row for row in rows if row.get("predicted_output") is not None]
        values["reward"] = (sum(sum(w * (row["test_functions"].get(n) or 0.0)
                                    for n, w in weights.items()) for row in scored)
                            / len(scored)) if scored else math.nan
        aggregated["reward"] = format_metric(values["reward"])
    if summary:
        details["test_functions"] = summary
    aggregated["eval_seconds"] = format_metric(time.monotonic() - started)
    return EvaluationResult(rows=[_finite(row) for row in rows], aggregated=aggregated,
                            details=_finite(details))
