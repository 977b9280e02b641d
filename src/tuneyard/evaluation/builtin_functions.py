"""The built-in test functions, in Emissary's model: `f(input_text, expected_output,
predicted_output) -> float`.

Each function is self-contained (its imports and helpers live inside it) on
purpose: `GET /v1/testing-functions` shows a function's source as its
`content`, and a user who copies that text gets a function that runs as is.
Imports are inside the bodies so that listing them (API server) loads nothing.

Returning None means "no score for this example" (e.g. a value that is not a
number); the evaluation leaves such examples out of the function's mean.
"""

from __future__ import annotations


def exact_match(input_text: str, expected_output: str, predicted_output: str) -> float:
    """1.0 when the prediction equals the expected output (surrounding whitespace ignored)."""
    return float(expected_output.strip() == predicted_output.strip())


def rouge_l(input_text: str, expected_output: str, predicted_output: str) -> float:
    """ROUGE-L F-measure (rouge-score; its tokenizer lowercases and keeps [a-z0-9] words)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return scorer.score(expected_output, predicted_output)["rougeL"].fmeasure


def chrf(input_text: str, expected_output: str, predicted_output: str) -> float:
    """Sentence chrF (sacrebleu defaults: character 6-grams, beta 2) on a 0-1 scale."""
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(predicted_output, [expected_output]).score / 100.0


def classification_match(input_text: str, expected_output: str, predicted_output: str) -> float:
    """Label agreement, ignoring case and spacing; comma-separated labels (multi-label)
    score the Jaccard index of the two label sets, so one label each is 1.0 or 0.0."""

    def labels(text: str) -> set[str]:
        return {" ".join(part.split()).lower() for part in text.split(",") if part.strip()}

    expected, predicted = labels(expected_output), labels(predicted_output)
    if not expected and not predicted:
        return 1.0
    return len(expected & predicted) / len(expected | predicted)


def similarity(input_text: str, expected_output: str, predicted_output: str) -> float:
    """Token F1 (as SQuAD scores answers): lowercased word tokens, counted as bags."""
    import re
    from collections import Counter

    expected = re.findall(r"\w+", expected_output.lower())
    predicted = re.findall(r"\w+", predicted_output.lower())
    if not expected and not predicted:
        return 1.0
    common = sum((Counter(expected) & Counter(predicted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def regression_mae(input_text: str, expected_output: str, predicted_output: str) -> float:
    """Absolute difference of the two values read as numbers; None when either is not one."""
    try:
        return abs(float(expected_output) - float(predicted_output))
    except (TypeError, ValueError):
        return None


BUILTIN_NAMES = (
    "exact_match", "rouge_l", "chrf", "classification_match", "similarity", "regression_mae",
)
# pip names each built-in imports beyond the standard library.
BUILTIN_DEPENDENCIES = {"rouge_l": ["rouge-score"], "chrf": ["sacrebleu"]}
