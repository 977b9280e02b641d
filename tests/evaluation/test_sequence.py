"""Classification and regression evaluation on the packaged MiniLM: the fresh-head
baseline, a head trained here on a learnable toy task, metrics recomputed from
the rows and from the model directly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tuneyard.evaluation import evaluate_checkpoint

pytestmark = pytest.mark.slow  # real models, some trained here

LABELS = ["negative", "positive"]
TRAIN = [(t, "positive") for t in (
    "I love this movie", "what a wonderful day", "this is great", "absolutely fantastic work",
    "I am so happy", "brilliant and delightful")] + [(t, "negative") for t in (
    "I hate this movie", "what a terrible day", "this is awful", "absolutely horrible work",
    "I am so sad", "dreadful and disgusting")]
TEST = [{"text": t, "labels": [label]} for t, label in (
    ("such a lovely experience", "positive"), ("I really enjoyed it", "positive"),
    ("superb performance", "positive"), ("so good", "positive"),
    ("such a miserable experience", "negative"), ("I really disliked it", "negative"),
    ("awful performance", "negative"), ("so bad", "negative"))]


def _without_time(aggregated: dict) -> dict:
    return {k: v for k, v in aggregated.items() if k != "eval_seconds"}


def _check_rows_against_aggregates(result, labels):
    """Recompute the aggregated metrics from the rows, by hand."""
    rows, agg = result.rows, result.aggregated
    assert len(rows) == len(TEST) and agg["num_examples"] == str(len(TEST))
    for row in rows:
        probs = row["probabilities"]
        assert sum(probs.values()) == pytest.approx(1.0)
        assert row["predicted_output"] == max(probs, key=probs.get)
        assert row["correct"] == (row["predicted_output"] == row["expected_output"])
        assert row["loss"] == pytest.approx(-math.log(probs[row["expected_output"]]), rel=1e-6)
    assert float(agg["accuracy"]) == pytest.approx(np.mean([r["correct"] for r in rows]),
                                                   abs=1e-6)
    assert float(agg["loss"]) == pytest.approx(np.mean([r["loss"] for r in rows]), rel=1e-5)
    f1s = []
    present = {r["expected_output"] for r in rows} | {r["predicted_output"] for r in rows}
    for label in present:
        tp = sum(r["expected_output"] == label == r["predicted_output"] for r in rows)
        predicted = sum(r["predicted_output"] == label for r in rows)
        actual = sum(r["expected_output"] == label for r in rows)
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    assert float(agg["macro_f1"]) == pytest.approx(np.mean(f1s), abs=1e-6)
    matrix = result.details["confusion_matrix"]
    assert result.details["labels"] == labels
    assert sum(map(sum, matrix)) == len(TEST)
    assert sum(matrix[i][i] for i in range(len(labels))) == sum(r["correct"] for r in rows)


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory, minilm):
    """MiniLM + a classification head trained on TRAIN (the encoder frozen: its pooled
    output is computed once and only the head learns, to keep the test fast)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(123)
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm, num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="single_label_classification").eval()
    batch = tokenizer([t for t, _ in TRAIN], padding=True, return_tensors="pt")
    targets = torch.tensor([LABELS.index(label) for _, label in TRAIN])
    with torch.no_grad():
        pooled = model.bert(**batch).pooler_output
    optimizer = torch.optim.AdamW(model.classifier.parameters(), lr=1e-2)
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(model.classifier(pooled), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    path = tmp_path_factory.mktemp("checkpoints") / "classifier"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "checkpoint.json").write_text(json.dumps({"labels": LABELS, "multi_label": False}))
    return path, model, tokenizer


def test_fresh_head_baseline_then_training_improves_accuracy(minilm, trained_classifier, home):
    baseline = evaluate_checkpoint(model_dir=str(minilm), task_type="classification",
                                   examples=TEST, labels=LABELS, home=home, batch_size=3)
    assert baseline.details["fresh_head"] is True
    _check_rows_against_aggregates(baseline, LABELS)
    again = evaluate_checkpoint(model_dir=str(minilm), task_type="classification",
                                examples=TEST, labels=LABELS, home=home)
    assert _without_time(again.aggregated) == _without_time(baseline.aggregated)  # seeded head

    path, model, tokenizer = trained_classifier
    # Labels come from the manifest; given in another order they map to the head's.
    for labels in (None, list(reversed(LABELS))):
        trained = evaluate_checkpoint(model_dir=str(path), task_type="classification",
                                      examples=TEST, labels=labels, home=home,
                                      test_functions=["classification_match"])
        assert trained.details["fresh_head"] is False
        _check_rows_against_aggregates(trained, LABELS)
        assert float(trained.aggregated["accuracy"]) >= 0.875
        assert float(trained.aggregated["accuracy"]) > float(baseline.aggregated["accuracy"])
        assert trained.aggregated["classification_match"] == trained.aggregated["accuracy"]

    # The predictions are the trained model's own.
    with torch.no_grad():
        logits = model(**tokenizer([e["text"] for e in TEST], padding=True,
                                   return_tensors="pt")).logits
    assert [r["predicted_output"] for r in trained.rows] == \
           [LABELS[i] for i in logits.argmax(-1).tolist()]
    direct_loss = torch.nn.functional.cross_entropy(
        logits, torch.tensor([LABELS.index(e["labels"][0]) for e in TEST])).item()
    assert float(trained.aggregated["loss"]) == pytest.approx(direct_loss, rel=1e-4)


def test_checkpoint_with_other_labels_is_an_error(trained_classifier, home):
    path, _, _ = trained_classifier
    with pytest.raises(ValueError, match="was trained on labels"):
        evaluate_checkpoint(model_dir=str(path), task_type="classification", examples=TEST,
                            labels=["spam", "ham"], home=home)
    with pytest.raises(ValueError, match="multi_label=False"):
        evaluate_checkpoint(model_dir=str(path), task_type="classification", examples=TEST,
                            labels=LABELS, multi_label=True, home=home)


def test_gold_label_the_model_lacks_counts_as_wrong(trained_classifier, home):
    path, _, _ = trained_classifier
    examples = TEST[:2] + [{"text": "it was fine I guess", "labels": ["neutral"]}]
    result = evaluate_checkpoint(model_dir=str(path), task_type="classification",
                                 examples=examples, home=home)
    assert result.rows[2]["correct"] is False and result.rows[2]["loss"] is None
    assert result.details["labels"] == LABELS + ["neutral"]
    assert result.details["per_class"]["neutral"] == {"precision": 0.0, "recall": 0.0,
                                                      "f1": 0.0, "support": 1}


def test_multi_label_baseline(minilm, home):
    labels = ["food", "service", "price"]
    examples = [
        {"text": "tasty food but slow service", "labels": ["food", "service"]},
        {"text": "too expensive", "labels": ["price"]},
        {"text": "cheap and delicious", "labels": ["food", "price"]},
        {"text": "rude waiter", "labels": ["service"]},
    ]
    result = evaluate_checkpoint(model_dir=str(minilm), task_type="classification",
                                 examples=examples, labels=labels, multi_label=True, home=home)
    rows, agg = result.rows, result.aggregated
    gold = [set(e["labels"]) for e in examples]
    predicted = []
    for row, g, example in zip(rows, gold, examples, strict=True):
        probs = row["probabilities"]
        chosen = {label for label in labels if probs[label] >= 0.5}
        predicted.append(chosen)
        assert set(filter(None, row["predicted_output"].split(", "))) == chosen
        assert row["expected_output"] == ", ".join(example["labels"])
        bce = -np.mean([math.log(probs[lab]) if lab in g else math.log(1 - probs[lab])
                        for lab in labels])
        assert row["loss"] == pytest.approx(bce, rel=1e-5)
    tp = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p - g) for g, p in zip(gold, predicted, strict=True))
    fn = sum(len(g - p) for g, p in zip(gold, predicted, strict=True))
    assert float(agg["micro_f1"]) == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert float(agg["hamming_loss"]) == pytest.approx((fp + fn) / (4 * 3), abs=1e-6)
    assert float(agg["accuracy"]) == pytest.approx(
        np.mean([g == p for g, p in zip(gold, predicted, strict=True)]), abs=1e-6)
    assert set(result.details["confusion"]) == set(labels)


REGRESSION = [{"text": t, "value": v} for t, v in (
    ("one", 1.0), ("two apples", 2.0), ("three small red apples", 3.5), ("none", 0.0),
    ("a few", 2.5))]


def test_regression_fresh_head_metrics_match_rows(minilm, home):
    from scipy import stats

    result = evaluate_checkpoint(model_dir=str(minilm), task_type="regression",
                                 examples=REGRESSION, home=home, test_functions=["regression_mae"])
    assert result.details["fresh_head"] is True
    gold = np.array([r["expected_output"] for r in result.rows])
    pred = np.array([r["predicted_output"] for r in result.rows])
    assert gold.tolist() == [e["value"] for e in REGRESSION]
    agg = {k: float(v) for k, v in result.aggregated.items()}
    assert agg["mse"] == pytest.approx(np.mean((gold - pred) ** 2), rel=1e-5)
    assert agg["loss"] == agg["mse"]
    assert agg["mae"] == pytest.approx(np.mean(np.abs(gold - pred)), rel=1e-5)
    assert agg["regression_mae"] == pytest.approx(agg["mae"], rel=1e-5)
    assert agg["rmse"] == pytest.approx(math.sqrt(agg["mse"]), rel=1e-5)
    assert agg["r2"] == pytest.approx(
        1 - np.sum((gold - pred) ** 2) / np.sum((gold - gold.mean()) ** 2), rel=1e-5)
    assert agg["spearman"] == pytest.approx(stats.spearmanr(gold, pred).statistic, abs=1e-6)


def test_regression_checkpoint_keeps_its_head(tmp_path, minilm, home):
    """A head that always answers 0.7 (zero weights, bias 0.7) must be used as is."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        minilm, num_labels=1, problem_type="regression")
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(0.7)
    model.save_pretrained(tmp_path / "reg")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(tmp_path / "reg")
    (tmp_path / "reg" / "checkpoint.json").write_text(json.dumps({"labels": None}))
    result = evaluate_checkpoint(model_dir=str(tmp_path / "reg"), task_type="regression",
                                 examples=REGRESSION, home=home)
    assert result.details["fresh_head"] is False
    assert [r["predicted_output"] for r in result.rows] == pytest.approx([0.7] * 5, abs=1e-6)
    gold = np.array([e["value"] for e in REGRESSION])
    assert float(result.aggregated["mae"]) == pytest.approx(np.mean(np.abs(gold - 0.7)),
                                                            rel=1e-5)
    assert result.aggregated["spearman"] == "nan"  # constant predictions: undefined


def test_lora_classifier_checkpoint(tmp_path, minilm, home):
    """A LoRA adapter (SEQ_CLS: the head travels in the adapter) on its base."""
    import warnings

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(5)
    base = AutoModelForSequenceClassification.from_pretrained(
        minilm, num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    config = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"],
                        init_lora_weights=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                FutureWarning)
        model = get_peft_model(base, config).eval()
    with torch.no_grad():  # a head unlike any fresh one
        model.base_model.model.classifier.modules_to_save["default"].bias.copy_(
            torch.tensor([0.3, -0.3]))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    (adapter / "checkpoint.json").write_text(json.dumps(
        {"labels": LABELS, "multi_label": False, "base_model_path": str(minilm)}))
    result = evaluate_checkpoint(model_dir=str(adapter), task_type="classification",
                                 examples=TEST, home=home)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    with torch.no_grad():
        logits = model(**tokenizer([e["text"] for e in TEST], padding=True,
                                   return_tensors="pt")).logits
    probs = torch.softmax(logits, -1)
    for row, p in zip(result.rows, probs.tolist(), strict=True):
        assert [row["probabilities"][label] for label in LABELS] == pytest.approx(p, abs=1e-5)
