"""Classification, regression and embedding evaluation: predictions, rows, metrics.

Classification: single-label predicts the argmax label (softmax
probabilities, loss = cross-entropy of the gold label); multi-label predicts
every label whose sigmoid is >= 0.5 (possibly none; loss = BCE averaged over
the model's labels). A gold label the model does not know cannot be predicted:
it counts as an error in the metrics and its example's loss is None.
Labels travel in rows as comma-separated text (", "), the form the
`classification_match` test function reads; they must not contain commas.
Rows also carry `probabilities` {label: p} (the 50 most likely beyond 50 labels).

Regression: the head's single output is the prediction; loss = squared error.
Embedding: cosine of the two texts' embeddings against the gold score;
loss = squared difference (as CosineSimilarityLoss trains it).
"""

from __future__ import annotations

import numpy as np
import torch

from tuneyard.evaluation import metrics

THRESHOLD = 0.5
# Rows carry every label's probability up to this many labels, else the top ones
# only: a thousand-label task must not make the results file a thousand times larger.
MAX_PROBABILITIES = 50


@torch.no_grad()
def predict_logits(model, tokenizer, texts: list[str], *, batch_size: int,
                   max_seq_length: int) -> np.ndarray:
    """[len(texts), num_labels] float64 logits."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                          max_length=max_seq_length, return_tensors="pt").to(device)
        out.append(model(**batch).logits.float().cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


def _gold(example: dict) -> list[str]:
    labels = example["labels"]
    return [labels] if isinstance(labels, str) else [str(label) for label in labels]


def _joined(labels) -> str:
    return ", ".join(labels)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _bce(logits: np.ndarray, targets: np.ndarray) -> float:
    # log(1 + e^x) - x*t, written to stay finite for large |x|.
    terms = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return float(np.mean(terms))


def _probabilities(probs: np.ndarray, labels: list[str]) -> dict[str, float]:
    order = np.argsort(-probs, kind="stable")[:MAX_PROBABILITIES]
    return {labels[j]: float(probs[j]) for j in sorted(order.tolist())}


def classification_results(*, examples: list[dict], logits: np.ndarray, labels: list[str],
                           multi_label: bool) -> tuple[list[dict], dict, dict]:
    """(rows, metrics as floats, details) from the model's logits."""
    index = {label: i for i, label in enumerate(labels)}
    golds = [_gold(e) for e in examples]
    unknown = sorted({g for gold in golds for g in gold if g not in index})
    all_labels = list(labels) + unknown
    rows, expected_sets, predicted_sets, losses = [], [], [], []
    from scipy.special import expit, logsumexp

    probabilities = expit(logits) if multi_label else _softmax(logits)
    for i, (example, gold) in enumerate(zip(examples, golds, strict=True)):
        probs = probabilities[i]
        if multi_label:
            predicted = [label for j, label in enumerate(labels) if probs[j] >= THRESHOLD]
            if any(g not in index for g in gold):
                loss = None
            else:
                target = np.array([1.0 if label in gold else 0.0 for label in labels])
                loss = _bce(logits[i], target)
        else:
            predicted = [labels[int(np.argmax(probs))]]
            gold = gold[:1]  # single-label: the first label is the gold one
            known = gold[0] in index
            loss = float(logsumexp(logits[i]) - logits[i][index[gold[0]]]) if known else None
        expected_sets.append(set(gold))
        predicted_sets.append(set(predicted))
        losses.append(loss)
        rows.append({
            "index": i,
            "input": example["text"],
            "expected_output": _joined(gold),
            "predicted_output": _joined(predicted),
            "loss": loss,
            "score": None,
            "correct": set(gold) == set(predicted),
            "probabilities": _probabilities(probs, labels),
        })
    values = {"loss": metrics.mean(losses),
              **metrics.classification_metrics(expected_sets, predicted_sets, all_labels,
                                               multi_label=multi_label)}
    details = {
        "labels": all_labels,
        "per_class": metrics.per_class_scores(expected_sets, predicted_sets, all_labels),
    }
    if multi_label:
        details["confusion"] = metrics.multilabel_confusion(expected_sets, predicted_sets,
                                                            all_labels)
    else:
        details["confusion_matrix"] = metrics.confusion_matrix(
            [next(iter(s)) for s in expected_sets], [next(iter(s)) for s in predicted_sets],
            all_labels)
    return rows, values, details


def regression_results(*, examples: list[dict],
                       predictions: np.ndarray) -> tuple[list[dict], dict, dict]:
    gold = [float(e["value"]) for e in examples]
    predicted = [float(p) for p in predictions]
    rows = [{
        "index": i,
        "input": example["text"],
        "expected_output": g,
        "predicted_output": p,
        "loss": (p - g) ** 2,
        "score": None,
        "correct": None,
    } for i, (example, g, p) in enumerate(zip(examples, gold, predicted, strict=True))]
    values = metrics.regression_metrics(gold, predicted)
    return rows, {"loss": values["mse"], **values}, {}


@torch.no_grad()
def cosine_scores(model, examples: list[dict], *, batch_size: int) -> list[float]:
    """Cosine similarity of each (text1, text2) under a SentenceTransformer."""
    import torch.nn.functional as F

    first = model.encode([e["text1"] for e in examples], batch_size=batch_size,
                         convert_to_tensor=True, show_progress_bar=False)
    second = model.encode([e["text2"] for e in examples], batch_size=batch_size,
                          convert_to_tensor=True, show_progress_bar=False)
    return F.cosine_similarity(first.float(), second.float()).cpu().tolist()


def embedding_results(*, examples: list[dict],
                      cosines: list[float]) -> tuple[list[dict], dict, dict]:
    gold = [float(e["score"]) for e in examples]
    rows = [{
        "index": i,
        "input": f"{example['text1']}\n{example['text2']}",
        "text1": example["text1"],
        "text2": example["text2"],
        "expected_output": g,
        "predicted_output": c,
        "loss": (c - g) ** 2,
        "score": c,
        "correct": None,
    } for i, (example, g, c) in enumerate(zip(examples, gold, cosines, strict=True))]
    values = metrics.embedding_metrics(gold, cosines)
    return rows, {"loss": values["mse"], **values}, {}
