"""Embedding evaluation: cosine of each pair under the sentence-transformers model,
against the gold score, checked against sentence-transformers and scipy directly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tuneyard.evaluation import evaluate_checkpoint

PAIRS = [
    {"text1": "A man is playing a guitar.", "text2": "A person plays an instrument.", "score": 0.8},
    {"text1": "A cat sleeps on the sofa.", "text2": "The stock market fell today.", "score": 0.0},
    {"text1": "Children are playing football.", "text2": "Kids play soccer.", "score": 0.9},
    {"text1": "The weather is cold.", "text2": "It is freezing outside.", "score": 0.7},
    {"text1": "I bought a new phone.", "text2": "Bananas are yellow.", "score": 0.1},
    {"text1": "She is reading a book.", "text2": "A woman reads.", "score": 0.85},
]


def test_embedding_metrics_match_direct_cosines(minilm, home):
    from sentence_transformers import SentenceTransformer

    result = evaluate_checkpoint(model_dir=str(minilm), task_type="embedding", examples=PAIRS,
                                 home=home, batch_size=4, test_functions=["regression_mae"])
    model = SentenceTransformer(str(minilm), device="cpu")
    first = model.encode([p["text1"] for p in PAIRS], convert_to_numpy=True)
    second = model.encode([p["text2"] for p in PAIRS], convert_to_numpy=True)
    cosine = np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1)
                                               * np.linalg.norm(second, axis=1))
    gold = np.array([p["score"] for p in PAIRS])

    rows = result.rows
    assert len(rows) == len(PAIRS)
    assert [r["predicted_output"] for r in rows] == pytest.approx(cosine.tolist(), abs=1e-5)
    assert [r["score"] for r in rows] == [r["predicted_output"] for r in rows]
    assert [r["expected_output"] for r in rows] == gold.tolist()
    assert rows[0]["text1"] == PAIRS[0]["text1"] and rows[0]["text2"] == PAIRS[0]["text2"]
    agg = result.aggregated
    assert float(agg["spearman"]) == pytest.approx(stats.spearmanr(cosine, gold).statistic,
                                                   abs=1e-5)
    assert float(agg["pearson"]) == pytest.approx(stats.pearsonr(cosine, gold).statistic,
                                                  abs=1e-5)
    assert float(agg["mse"]) == pytest.approx(np.mean((cosine - gold) ** 2), rel=1e-4)
    assert float(agg["spearman"]) > 0.5  # MiniLM ranks these pairs sensibly
    assert float(agg["regression_mae"]) == pytest.approx(np.mean(np.abs(cosine - gold)),
                                                         rel=1e-4)
    assert agg["num_examples"] == "6"
