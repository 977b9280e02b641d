"""Split ratios in both documented forms; deterministic split, downsample and rebalance."""

from __future__ import annotations

from collections import Counter

import pytest

from tuneyard.data import (
    DEFAULT_TEST_SPLIT,
    downsample,
    normalize_split_ratio,
    rebalance,
    split_examples,
)


@pytest.mark.parametrize(("value", "expected"), [
    (None, 0.1), (0.2, 0.2), (0.05, 0.05), (0.999, 0.999),  # SDK contract: a fraction
    (20, 0.2), (1, 0.01), (99, 0.99), (12.5, 0.125), (20.0, 0.2),  # Emissary v2: a percentage
])
def test_normalize_split_ratio(value, expected):
    assert normalize_split_ratio(value) == pytest.approx(expected)


def test_default_test_split():
    assert DEFAULT_TEST_SPLIT == 0.1
    assert normalize_split_ratio(None) == DEFAULT_TEST_SPLIT


@pytest.mark.parametrize("value", [0, 0.0, 150, 99.5, 100, -5, -0.2, True, float("nan"),
                                   float("inf"), "20"])
def test_normalize_split_ratio_rejects(value):
    with pytest.raises(ValueError, match="^train_test_split_ratio must be a fraction between 0 "
                                         r"and 1 \(e\.g\. 0\.2\) or a percentage between 1 and "
                                         r"99 \(e\.g\. 20\), got "):
        normalize_split_ratio(value)


def test_split_ratio_message_shows_the_value():
    with pytest.raises(ValueError) as caught:
        normalize_split_ratio(150)
    assert str(caught.value).endswith("got 150")


def test_split_sizes_and_partition():
    examples = list(range(100))
    train, test = split_examples(examples, test_fraction=0.2, seed=7)
    assert (len(train), len(test)) == (80, 20)
    assert sorted(train + test) == examples
    assert train == sorted(train) and test == sorted(test)  # original order is kept


def test_split_is_deterministic_by_seed():
    examples = [{"i": i} for i in range(50)]
    first = split_examples(examples, test_fraction=0.3, seed=1)
    assert split_examples(examples, test_fraction=0.3, seed=1) == first
    assert split_examples(list(examples), test_fraction=0.3, seed=1) == first
    assert split_examples(examples, test_fraction=0.3, seed=2) != first


def test_split_keeps_one_of_each_side():
    assert split_examples(["a", "b"], test_fraction=0.01, seed=0)[1] != []
    train, test = split_examples(["a", "b"], test_fraction=0.99, seed=0)
    assert (len(train), len(test)) == (1, 1)
    train, test = split_examples(list(range(3)), test_fraction=0.9, seed=0)
    assert (len(train), len(test)) == (1, 2)


def test_split_needs_two_examples_and_a_fraction():
    for examples in ([], ["only"]):
        with pytest.raises(ValueError, match="at least 2 records"):
            split_examples(examples, test_fraction=0.2, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        split_examples([1, 2, 3], test_fraction=20, seed=0)


def test_downsample():
    examples = list(range(200))
    kept = downsample(examples, percent=25, seed=3)
    assert len(kept) == 50
    assert set(kept) <= set(examples) and kept == sorted(kept)
    assert downsample(examples, percent=25, seed=3) == kept
    assert downsample(examples, percent=25, seed=4) != kept
    assert downsample(examples, percent=100, seed=0) == examples
    assert downsample(examples, percent=0.1, seed=0) != []  # at least one
    assert len(downsample(examples, percent=0.1, seed=0)) == 1
    assert downsample([], percent=50, seed=0) == []


@pytest.mark.parametrize("percent", [0, -1, 101, True])
def test_downsample_rejects_bad_percent(percent):
    with pytest.raises(ValueError, match="percent"):
        downsample([1, 2], percent=percent, seed=0)


def labelled(counts: dict[str, int]) -> list[dict]:
    return [{"text": f"{label} {i}", "labels": [label]}
            for label, n in counts.items() for i in range(n)]


def label_counts(examples: list[dict]) -> Counter:
    return Counter(e["labels"][0] for e in examples)


def test_rebalance_by_ratio_keeps_the_total():
    examples = labelled({"a": 90, "b": 10})
    result = rebalance(examples, spec={"a": 0.5, "b": 0.5}, seed=0)
    assert label_counts(result) == {"a": 50, "b": 50}
    # Shrinking draws without replacement: no duplicates among the a's.
    assert len({e["text"] for e in result if e["labels"] == ["a"]}) == 50
    # Growing keeps every original b, then adds copies.
    assert {e["text"] for e in examples if e["labels"] == ["b"]} <= {e["text"] for e in result}


def test_rebalance_ratios_round_to_the_exact_total_and_drop_unnamed_labels():
    examples = labelled({"a": 5, "b": 3, "c": 2})
    result = rebalance(examples, spec={"a": 0.33, "b": 0.33, "c": 0.34}, seed=1)
    assert len(result) == 10
    result = rebalance(examples, spec={"a": 0.7, "b": 0.3}, seed=1)
    assert label_counts(result) == {"a": 7, "b": 3}


def test_rebalance_by_count():
    examples = labelled({"a": 40, "b": 5, "c": 7})
    result = rebalance(examples, spec={"a": 10, "b": 12}, seed=0)
    assert label_counts(result) == {"a": 10, "b": 12, "c": 7}  # c is not named: kept
    result = rebalance(examples, spec={"a": 300.0, "b": 0.0}, seed=0)  # counts as JSON floats
    assert label_counts(result) == {"a": 300, "c": 7}


def test_rebalance_is_deterministic():
    examples = labelled({"a": 30, "b": 4})
    first = rebalance(examples, spec={"a": 0.6, "b": 0.4}, seed=5)
    assert rebalance(examples, spec={"a": 0.6, "b": 0.4}, seed=5) == first
    assert rebalance(examples, spec={"a": 0.6, "b": 0.4}, seed=6) != first


def test_rebalance_groups_by_the_first_label():
    examples = [{"text": "x", "labels": ["a", "b"]}, {"text": "y", "labels": ["b"]}]
    assert label_counts(rebalance(examples, spec={"a": 3, "b": 1}, seed=0)) == {"a": 3, "b": 1}


def test_rebalance_rejects_unknown_labels_and_bad_specs():
    examples = labelled({"a": 3, "b": 3})
    with pytest.raises(ValueError, match="not in the dataset: zebra"):
        rebalance(examples, spec={"a": 0.5, "zebra": 0.5}, seed=0)
    with pytest.raises(ValueError, match="must sum to 1"):
        rebalance(examples, spec={"a": 0.5, "b": 0.2}, seed=0)
    for spec in ({}, {"a": -1}, {"a": "3"}, {"a": True}):
        with pytest.raises(ValueError, match="rebalance must map labels"):
            rebalance(examples, spec=spec, seed=0)
    with pytest.raises(ValueError, match="no labels"):
        rebalance([{"text": "t", "value": 1.0}], spec={"a": 1}, seed=0)
