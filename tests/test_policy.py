"""The platform's rules (tuneyard.policy): ranking, early stopping, retention, timeouts."""

from __future__ import annotations

import pytest

from tuneyard import policy


@pytest.mark.parametrize(("metric", "greater"), [
    ("loss", False), ("eval_loss", False), ("hamming_loss", False), ("mae", False),
    ("perplexity", False), ("eval_seconds", False), ("accuracy", True),
    ("eval_accuracy", True), ("spearman", True),
])
def test_direction_of_each_metric(metric, greater):
    assert policy.greater_is_better(metric) is greater
    assert policy.greater_is_better(metric, not greater) is (not greater)  # the user's word


def test_ranking_names_the_metric_as_results_do():
    assert policy.ranking(metric_for_best_model="eval_loss", greater=None) == \
        policy.Ranking(metric="loss", greater=False)
    assert policy.ranking(metric_for_best_model="", greater=None,
                          task_type="classification") == policy.Ranking("accuracy", True)
    assert policy.metric_key("eval_seconds") == "eval_seconds"  # its own name


def test_best_first_compares_numbers_and_prefers_the_earlier_on_ties():
    assert policy.best_first([(9, 9.5), (10, 10.5), (11, None)], greater=False) == [9, 10]
    assert policy.best_first([(1, 0.5), (2, 0.9), (3, 0.9)], greater=True) == [2, 3, 1]
    assert [policy.metric_number(v) for v in ("0.5", "nan", "x", None, True)] == \
        [0.5, None, None, None, None]


@pytest.mark.parametrize(("values", "patience", "greater", "stops"), [
    ([3.0, 2.0, 2.5, 2.1], 2, False, True),
    ([3.0, 2.0, 2.5], 2, False, False),
    ([3.0, 2.0, 2.0], 1, False, True),  # equal is no improvement
    ([1.0, 2.0, 1.5], 1, True, True),
    ([3.0, 4.0, 5.0], 0, False, False),  # patience 0: never
])
def test_stop_early(values, patience, greater, stops):
    assert policy.stop_early(values, patience=patience, greater=greater) is stops


def test_retention_keeps_best_k_latest_and_busy():
    keep = policy.checkpoints_to_keep(numbers=[1, 2, 3, 4, 5], ranked=[2, 4, 1], keep=2,
                                      busy=[3])
    assert keep == {2, 4, 5, 3}
    assert policy.checkpoints_to_keep(numbers=[1, 2], ranked=[2], keep=0) == {1, 2}


def test_timeout_counts_from_the_start_with_grace():
    assert policy.timed_out(timeout_seconds=3, started_at=100, now=103.5)
    assert not policy.timed_out(timeout_seconds=3, started_at=100, now=103.5, grace=30)
    assert not policy.timed_out(timeout_seconds=0, started_at=100, now=10_000)
    assert not policy.timed_out(timeout_seconds=3, started_at=None, now=10_000)
    assert policy.timeout_reason(3) == "the job exceeded timeout_seconds=3"
