"""Aggregate metrics equal a direct computation on the same predictions.

scikit-learn is not installed: expected values are derived by hand (small
fixed cases) or by an independent formulation (confusion matrix in numpy,
scipy.stats) on random predictions.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from tuneyard.evaluation import metrics
from tuneyard.evaluation.metrics import format_metric


def test_format_metric_round_trips_as_float():
    for value in (0.0, 1.0, 0.123456789, 1234567.891, 1e-9, -3.5, 2 / 3, np.float32(0.25)):
        text = format_metric(value)
        assert isinstance(text, str)
        assert float(text) == pytest.approx(float(value), rel=1e-5, abs=0)
    assert format_metric(2 / 3) == "0.666667"
    assert format_metric(12) == "12" and format_metric(np.int64(12345678)) == "12345678"
    assert format_metric(True) == "1"
    assert format_metric(float("nan")) == "nan" and format_metric(None) == "nan"
    assert format_metric(float("inf")) == "inf" and format_metric(-math.inf) == "-inf"
    assert math.isnan(float(format_metric(None)))


def test_text_generation_aggregates():
    # Token-weighted, not a mean of per-example means: (2 + 9) / (1 + 3).
    assert metrics.token_weighted_loss([2.0, 9.0], [1, 3]) == pytest.approx(11 / 4)
    assert metrics.perplexity(11 / 4) == pytest.approx(math.exp(11 / 4))
    assert metrics.perplexity(1e6) == math.inf
    assert metrics.token_accuracy([1, 1], [1, 3]) == pytest.approx(0.5)
    assert math.isnan(metrics.token_weighted_loss([], []))
    assert metrics.mean([1.0, None, 2.0]) == 1.5 and math.isnan(metrics.mean([None]))


def test_single_label_classification_by_hand():
    labels = ["a", "b", "c", "d"]  # d occurs nowhere: left out of the macro average
    gold = ["a", "a", "b", "b", "c", "a"]
    pred = ["a", "b", "b", "b", "a", "a"]
    result = metrics.classification_metrics([{g} for g in gold], [{p} for p in pred], labels,
                                            multi_label=False)
    # a: P 2/3 R 2/3 F 2/3; b: P 2/3 R 1 F .8; c: 0 0 0.
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["macro_precision"] == pytest.approx(4 / 9)
    assert result["macro_recall"] == pytest.approx(5 / 9)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert "micro_f1" not in result and "hamming_loss" not in result
    per_class = metrics.per_class_scores([{g} for g in gold], [{p} for p in pred], labels)
    assert per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8,
                                            "support": 2})
    assert per_class["d"]["support"] == 0
    assert metrics.confusion_matrix(gold, pred, labels) == [
        [2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_multi_label_classification_by_hand():
    labels = ["x", "y", "z"]
    gold = [{"x", "y"}, {"y"}, {"z"}, {"x"}]
    pred = [{"x"}, {"y", "z"}, {"z"}, set()]
    result = metrics.classification_metrics(gold, pred, labels, multi_label=True)
    assert result["accuracy"] == pytest.approx(1 / 4)  # subset accuracy
    assert result["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))  # tp 3, fp 1, fn 2
    assert result["hamming_loss"] == pytest.approx(3 / 12)
    assert result["macro_precision"] == pytest.approx(5 / 6)
    assert result["macro_recall"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert metrics.multilabel_confusion(gold, pred, labels)["z"] == {"tp": 1, "fp": 1, "fn": 0,
                                                                    "tn": 2}


def _reference_single_label(gold, pred, labels):
    """Macro scores from a numpy confusion matrix (rows gold, columns predicted)."""
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)))
    for g, p in zip(gold, pred, strict=True):
        cm[index[g], index[p]] += 1
    present = (cm.sum(0) + cm.sum(1)) > 0
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(0))
        recall = np.nan_to_num(tp / cm.sum(1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "accuracy": tp.sum() / cm.sum(),
        "macro_precision": precision[present].mean(),
        "macro_recall": recall[present].mean(),
        "macro_f1": f1[present].mean(),
    }, cm.astype(int).tolist()


def test_single_label_matches_confusion_matrix_formulation():
    rng = random.Random(7)
    labels = ["p", "q", "r", "s", "t"]
    for _ in range(20):
        n = rng.randint(1, 30)
        gold = [rng.choice(labels[:4]) for _ in range(n)]
        pred = [rng.choice(labels) for _ in range(n)]
        got = metrics.classification_metrics([{g} for g in gold], [{p} for p in pred], labels,
                                             multi_label=False)
        want, cm = _reference_single_label(gold, pred, labels)
        assert got == pytest.approx(want)
        assert metrics.confusion_matrix(gold, pred, labels) == cm


def test_multi_label_matches_indicator_matrix_formulation():
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d"]
    y_true = rng.integers(0, 2, size=(25, 4))
    y_pred = rng.integers(0, 2, size=(25, 4))
    def as_sets(matrix):
        return [{labels[j] for j in range(4) if row[j]} for row in matrix]

    got = metrics.classification_metrics(as_sets(y_true), as_sets(y_pred), labels,
                                         multi_label=True)
    tp = (y_true & y_pred).sum()
    fp = ((1 - y_true) & y_pred).sum()
    fn = (y_true & (1 - y_pred)).sum()
    assert got["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert got["hamming_loss"] == pytest.approx((y_true != y_pred).mean())
    assert got["accuracy"] == pytest.approx((y_true == y_pred).all(axis=1).mean())


def test_regression_metrics_match_numpy_and_scipy():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=40)
    pred = gold + rng.normal(scale=0.5, size=40)
    got = metrics.regression_metrics(gold.tolist(), pred.tolist())
    err = gold - pred
    assert got["mse"] == pytest.approx(np.mean(err ** 2))
    assert got["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert got["r2"] == pytest.approx(1 - np.sum(err ** 2) / np.sum((gold - gold.mean()) ** 2))
    assert got["spearman"] == pytest.approx(stats.spearmanr(gold, pred).statistic)
    # Spearman is Pearson on ranks (ties averaged).
    assert got["spearman"] == pytest.approx(
        np.corrcoef(stats.rankdata(gold), stats.rankdata(pred))[0, 1])


def test_embedding_metrics_match_scipy():
    gold = [0.1, 0.9, 0.5, 0.3, 0.7]
    cosine = [0.2, 0.8, 0.6, 0.1, 0.65]
    got = metrics.embedding_metrics(gold, cosine)
    assert got["spearman"] == pytest.approx(stats.spearmanr(cosine, gold).statistic)
    assert got["pearson"] == pytest.approx(stats.pearsonr(cosine, gold).statistic)
    assert got["mse"] == pytest.approx(np.mean((np.array(gold) - np.array(cosine)) ** 2))


def test_undefined_values_are_nan_without_warnings():
    # Warnings are errors in this suite: scipy's ConstantInputWarning would fail here.
    assert math.isnan(metrics.spearman([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]))
    assert math.isnan(metrics.pearson([0.5], [0.5]))
    assert math.isnan(metrics.r2([2.0, 2.0], [1.0, 3.0]))
    assert math.isnan(metrics.mse([], []))
    with pytest.raises(ValueError, match="length mismatch"):
        metrics.mse([1.0], [1.0, 2.0])
