"""GRPO's reward function: weights applied, zero weights not trained on, failures
scored 0, and the test functions run with the evaluation's limits."""

from __future__ import annotations

import math

import pytest

from tuneyard.evaluation.builtin_functions import exact_match, similarity
from tuneyard.training.reward import WeightedReward

PROMPTS = ["a b c", "d e f", "g h i", "j k l"]
EXPECTED = ["Y", "Y", "the cat sat", "no"]
COMPLETIONS = ["Y", " N", "the cat", "no"]


def rewards(weights, home, completions=COMPLETIONS, **kwargs):
    return WeightedReward(weights, home=home, **kwargs)(
        prompts=PROMPTS, completions=completions, expected=EXPECTED)


def test_weights_are_applied(tmp_path):
    em = [exact_match(p, e, c) for p, e, c in zip(PROMPTS, EXPECTED, COMPLETIONS, strict=True)]
    sim = [similarity(p, e, c) for p, e, c in zip(PROMPTS, EXPECTED, COMPLETIONS, strict=True)]
    assert rewards({"exact_match": 1.0}, tmp_path) == em == [1.0, 0.0, 0.0, 1.0]
    assert rewards({"exact_match": 2.5}, tmp_path) == [2.5 * v for v in em]
    mixed = rewards({"exact_match": 0.2, "similarity": 0.8}, tmp_path)
    assert mixed == pytest.approx([0.2 * a + 0.8 * b for a, b in zip(em, sim, strict=True)])
    assert 0 < mixed[2] < 0.8  # partial credit from similarity alone


def test_a_zero_weight_trains_like_the_first_function_alone(tmp_path):
    calls = []

    def spy(input_text, expected_output, predicted_output):
        calls.append(predicted_output)
        return 1.0

    alone = rewards({"exact_match": 1.0}, tmp_path)
    with_zero = WeightedReward({"exact_match": 1.0, "spy": 0.0}, home=tmp_path,
                               functions={"exact_match": exact_match, "spy": spy})
    assert with_zero(prompts=PROMPTS, completions=COMPLETIONS, expected=EXPECTED) == alone
    assert calls == []  # a weight of 0 is not even computed
    assert with_zero.weights == {"exact_match": 1.0}


def test_failures_and_timeouts_score_zero(tmp_path):
    def broken(i, e, p):
        raise RuntimeError("boom")

    def slow(i, e, p):
        while True:
            pass

    def nan(i, e, p):
        return math.nan

    reward = WeightedReward({"broken": 1.0, "slow": 1.0, "nan": 1.0, "exact_match": 1.0},
                            home=tmp_path, timeout_s=0.05,
                            functions={"broken": broken, "slow": slow, "nan": nan,
                                       "exact_match": exact_match})
    assert reward(prompts=PROMPTS[:1], completions=["Y"], expected=["Y"]) == [1.0]
    assert set(reward.errors) == {"broken", "slow", "nan"}
    assert reward.errors["slow"].startswith("timed out")


def test_chat_completions_and_admin_functions(tmp_path):
    folder = tmp_path / "test_functions"
    folder.mkdir()
    (folder / "mine.py").write_text(
        "def shout(input_text, expected_output, predicted_output):\n"
        "    return float(predicted_output.isupper())\n")
    reward = WeightedReward({"shout": 1.0}, home=tmp_path)
    chat = [[{"role": "assistant", "content": "YES"}], [{"role": "assistant", "content": "no"}]]
    prompts = [[{"role": "user", "content": "q"}]] * 2
    assert reward(prompts=prompts, completions=chat, expected=["x", "y"]) == [1.0, 0.0]


@pytest.mark.parametrize("weights", [{"exact_match": math.nan}, {"exact_match": math.inf},
                                     {"exact_match": 0}, {"exact_match": True}])
def test_bad_weights_refused(tmp_path, weights):
    with pytest.raises(ValueError):
        WeightedReward(weights, home=tmp_path)


def test_unknown_function_refused(tmp_path):
    with pytest.raises(KeyError, match="nope"):
        WeightedReward({"nope": 1.0}, home=tmp_path)
