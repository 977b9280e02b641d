"""Classification, regression and embedding through `load_for_serving`, checked
against direct forward passes / `SentenceTransformer.encode` on the same weights."""

from __future__ import annotations

import math

import pytest
import torch
from tests.serving.conftest import LABELS, MULTI_LABELS, TEXTS

from tuneyard.serving.errors import InvalidRequest, ModelLoadError, UnsupportedTask
from tuneyard.serving.loaded import load_for_serving
from tuneyard.serving.openai_format import (
    cosine_similarity,
    emissary_embeddings,
    euclidean_distance,
    manhattan_distance,
)


def _direct_logits(model_dir, texts) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():  # one text at a time: no padding involved
        return torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])


@pytest.fixture(scope="module")
def served(classifier_dir, multi_label_dir, regression_dir, minilm_dir):
    models = {
        "single": load_for_serving(str(classifier_dir), task_type="classification", device="cpu"),
        "multi": load_for_serving(str(multi_label_dir), task_type="classification", device="cpu"),
        "regression": load_for_serving(str(regression_dir), task_type="regression", device="cpu"),
        "embed": load_for_serving(str(minilm_dir), task_type="embeddings", device="cpu"),
    }
    yield models
    for model in models.values():
        model.close()


def test_single_label_classification_equals_a_direct_forward_pass(served, classifier_dir):
    model = served["single"]
    assert model.labels == LABELS
    results = model.classify(TEXTS)
    logits = _direct_logits(classifier_dir, TEXTS)
    probs = torch.softmax(logits, dim=-1)
    for result, row_logits, row_probs in zip(results, logits, probs, strict=True):
        assert list(result["scores"]) == LABELS
        assert math.isclose(sum(result["scores"].values()), 1.0, abs_tol=1e-5)
        assert result["logits"] == pytest.approx(row_logits.tolist(), abs=1e-4)
        assert list(result["scores"].values()) == pytest.approx(row_probs.tolist(), abs=1e-5)
        assert result["label"] == LABELS[int(row_logits.argmax())]
        assert "labels" not in result
    # The scaled head really separates texts (else label checks prove little).
    assert len({r["label"] for r in results}) >= 2
    [alone] = model.classify("I loved this film")  # a lone string is one text
    assert alone["label"] == results[0]["label"]
    assert alone["logits"] == pytest.approx(results[0]["logits"], abs=1e-4)


def test_multi_label_uses_sigmoid_and_the_manifest_label_names(served, multi_label_dir):
    model = served["multi"]
    assert model.labels == MULTI_LABELS  # config says LABEL_0…, the manifest knows better
    results = model.classify(TEXTS)
    probs = torch.sigmoid(_direct_logits(multi_label_dir, TEXTS))
    for result, row in zip(results, probs, strict=True):
        assert list(result["scores"].values()) == pytest.approx(row.tolist(), abs=1e-5)
        assert result["labels"] == [MULTI_LABELS[i] for i, p in enumerate(row) if p >= 0.5]
        assert result["label"] == MULTI_LABELS[int(row.argmax())]
    assert any(not math.isclose(sum(r["scores"].values()), 1.0, abs_tol=1e-3) for r in results)


def test_regression_returns_the_predicted_value(served, regression_dir):
    results = served["regression"].classify(TEXTS)
    direct = _direct_logits(regression_dir, TEXTS)[:, 0]
    assert [set(r) for r in results] == [{"value"}] * len(TEXTS)
    assert [r["value"] for r in results] == pytest.approx(direct.tolist(), abs=1e-4)
    assert len({round(r["value"], 3) for r in results}) == len(TEXTS)
    assert served["regression"].labels is None


def test_embeddings_equal_sentence_transformers_encode(served, minilm_dir):
    from sentence_transformers import SentenceTransformer

    model = served["embed"]
    assert model.task_type == "embedding" and model.source == "sentence-transformers"
    vectors = model.embed(TEXTS)
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS)
    assert len(vectors) == len(TEXTS) and len(vectors[0]) == 384
    for got, want in zip(vectors, expected, strict=True):
        assert got == pytest.approx(want.tolist(), abs=1e-5)
    assert model.info()["dimensions"] == 384

    a, b = torch.tensor(expected[0]), torch.tensor(expected[1])
    body = emissary_embeddings(vectors[0], vectors[1], cosine=True, manhattan=True,
                               euclidean=True)["response"]
    assert body["cosine_score"] == pytest.approx(
        torch.nn.functional.cosine_similarity(a, b, dim=0).item(), abs=1e-5)
    assert body["manhattan_distance"] == pytest.approx((a - b).abs().sum().item(), rel=1e-4)
    assert body["euclidean_distance"] == pytest.approx((a - b).norm().item(), rel=1e-4)
    assert cosine_similarity(vectors[2], vectors[2]) == pytest.approx(1.0)
    assert manhattan_distance(vectors[2], vectors[2]) == euclidean_distance(vectors[2],
                                                                            vectors[2]) == 0
    # A related pair is closer than an unrelated one: real MiniLM, not noise.
    first, related, unrelated = model.embed(["a cat sat on the mat", "a kitten sits on a rug",
                                             "quarterly results beat expectations"])
    assert cosine_similarity(first, related) > cosine_similarity(first, unrelated)


def test_routes_that_do_not_fit_the_task_say_so(served):
    with pytest.raises(UnsupportedTask, match="serves an embedding model; classification"):
        served["embed"].classify(["x"])
    with pytest.raises(UnsupportedTask, match="completions needs a text-generation"):
        served["single"].complete("x")
    with pytest.raises(UnsupportedTask, match="chat completions"):
        served["regression"].stream_chat([{"role": "user", "content": "x"}])
    with pytest.raises(InvalidRequest, match="non-empty list"):
        served["single"].classify([])


def test_a_sentence_transformers_dir_cannot_generate(minilm_dir):
    with pytest.raises(ModelLoadError, match="cannot generate text"):
        load_for_serving(str(minilm_dir), task_type="text-generation", device="cpu")
