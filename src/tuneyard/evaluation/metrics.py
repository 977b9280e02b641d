"""Aggregate metrics: pure functions over predictions (no models, no torch).

Conventions (each chosen to match the usual library and stated where it differs):

- Undefined values are NaN, never an exception or a library warning:
  a correlation over fewer than two points or a constant side; R² of a
  constant target (scikit-learn would say 0.0 or 1.0 there; NaN is honest).
- Classification treats every example as a *set* of labels (single-label is a
  set of one), so one code path serves both. `accuracy` is exact set equality
  (scikit-learn's accuracy, and its subset accuracy for multi-label). Macro
  scores average over the labels that occur in the gold or predicted sets, as
  scikit-learn does by default; a 0/0 precision, recall or F1 is 0.
- `format_metric` is how every aggregated value leaves as the contract's string.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np


def format_metric(value) -> str:
    """A string that `float()` parses back: integers exactly, floats to 6 significant
    digits, None/NaN as "nan", infinities as "inf"/"-inf"."""
    if value is None:
        return "nan"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Integral):
        return str(int(value))
    x = float(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def mean(values: Iterable[float | None]) -> float:
    """Mean of the values that are not None; NaN when there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else math.nan


# -- text generation ------------------------------------------------------------


def token_weighted_loss(loss_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """Mean cross-entropy per target token over the whole set (not a mean of means)."""
    total = sum(token_counts)
    return sum(loss_sums) / total if total else math.nan


def perplexity(loss: float) -> float:
    """exp(mean token loss); inf when that overflows."""
    if math.isnan(loss):
        return math.nan
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def token_accuracy(correct_counts: Sequence[int], token_counts: Sequence[int]) -> float:
    """Share of target tokens that are the argmax of the previous position's logits."""
    total = sum(token_counts)
    return sum(correct_counts) / total if total else math.nan


# -- classification -------------------------------------------------------------


def _safe_div(num: float, den: float) -> float:
    return num / den if den else 0.0


def per_class_scores(expected: Sequence[set[str]], predicted: Sequence[set[str]],
                     labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """label -> {precision, recall, f1, support} (one-vs-rest counts per label)."""
    scores = {}
    for label in labels:
        pairs = [(label in e, label in p) for e, p in zip(expected, predicted, strict=True)]
        tp = sum(1 for gold, guess in pairs if gold and guess)
        fp = sum(1 for gold, guess in pairs if not gold and guess)
        fn = sum(1 for gold, guess in pairs if gold and not guess)
        precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        scores[label] = {
            "precision": precision,
            "recall": recall,
            "f1": _safe_div(2 * precision * recall, precision + recall),
            "support": tp + fn,
        }
    return scores


def classification_metrics(expected: Sequence[set[str]], predicted: Sequence[set[str]],
                           labels: Sequence[str], *, multi_label: bool) -> dict[str, float]:
    """accuracy and macro precision/recall/F1; multi-label adds micro_f1 and hamming_loss.

    `labels` is every label the task knows (the model's, plus any gold label
    the model lacks); hamming_loss divides by examples × len(labels).
    """
    n = len(expected)
    if n == 0:
        return {"accuracy": math.nan, "macro_precision": math.nan,
                "macro_recall": math.nan, "macro_f1": math.nan}
    present = [label for label in labels
               if any(label in e for e in expected) or any(label in p for p in predicted)]
    per_class = per_class_scores(expected, predicted, present)
    metrics = {
        "accuracy": sum(e == p for e, p in zip(expected, predicted, strict=True)) / n,
        "macro_precision": mean(s["precision"] for s in per_class.values()),
        "macro_recall": mean(s["recall"] for s in per_class.values()),
        "macro_f1": mean(s["f1"] for s in per_class.values()),
    }
    if multi_label:
        tp = sum(len(e & p) for e, p in zip(expected, predicted, strict=True))
        fp = sum(len(p - e) for e, p in zip(expected, predicted, strict=True))
        fn = sum(len(e - p) for e, p in zip(expected, predicted, strict=True))
        metrics["micro_f1"] = _safe_div(2 * tp, 2 * tp + fp + fn)
        metrics["hamming_loss"] = _safe_div(fp + fn, n * len(labels))
    return metrics


def confusion_matrix(expected: Sequence[str], predicted: Sequence[str],
                     labels: Sequence[str]) -> list[list[int]]:
    """Single-label: matrix[i][j] = examples of gold labels[i] predicted as labels[j]."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for e, p in zip(expected, predicted, strict=True):
        matrix[index[e]][index[p]] += 1
    return matrix


def multilabel_confusion(expected: Sequence[set[str]], predicted: Sequence[set[str]],
                         labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """Multi-label: label -> {tp, fp, fn, tn} over the examples."""
    result = {}
    for label in labels:
        counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        for e, p in zip(expected, predicted, strict=True):
            key = ("t" if (label in e) == (label in p) else "f") + ("p" if label in p else "n")
            counts[key] += 1
        result[label] = counts
    return result


# -- regression and embedding ------------------------------------------------------


def _arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.shape[0]} vs {y.shape[0]}")
    return x, y


def _correlatable(x: np.ndarray, y: np.ndarray) -> bool:
    # scipy warns (ConstantInputWarning) and returns NaN on these; say NaN quietly.
    return x.size >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = _arrays(a, b)
    if not _correlatable(x, y):
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = _arrays(a, b)
    if not _correlatable(x, y):
        return math.nan
    from scipy.stats import pearsonr

    return float(pearsonr(x, y).statistic)


def mse(expected: Sequence[float], predicted: Sequence[float]) -> float:
    x, y = _arrays(expected, predicted)
    return float(np.mean((x - y) ** 2)) if x.size else math.nan


def mae(expected: Sequence[float], predicted: Sequence[float]) -> float:
    x, y = _arrays(expected, predicted)
    return float(np.mean(np.abs(x - y))) if x.size else math.nan


def r2(expected: Sequence[float], predicted: Sequence[float]) -> float:
    """1 - SS_res / SS_tot (coefficient of determination); NaN for a constant target."""
    x, y = _arrays(expected, predicted)
    total = float(np.sum((x - x.mean()) ** 2)) if x.size else 0.0
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum((x - y) ** 2)) / total


def regression_metrics(expected: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    error = mse(expected, predicted)
    return {
        "mse": error,
        "mae": mae(expected, predicted),
        "rmse": math.sqrt(error) if not math.isnan(error) else math.nan,
        "r2": r2(expected, predicted),
        "spearman": spearman(expected, predicted),
    }


def embedding_metrics(gold: Sequence[float], cosine: Sequence[float]) -> dict[str, float]:
    """Cosine similarity of each pair against its gold score."""
    return {
        "spearman": spearman(cosine, gold),
        "pearson": pearson(cosine, gold),
        "mse": mse(gold, cosine),
    }
