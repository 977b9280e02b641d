"""Encoder tasks for serving: classification / regression heads and embedders.

Texts are encoded in batches of `BATCH_SIZE` on the model thread (tokenizers
are not safe to share between threads while they pad and truncate).
"""

from __future__ import annotations

from typing import Any

import torch

from tuneyard.serving.loading import ClassifierParts
from tuneyard.serving.model import LoadedModel
from tuneyard.serving.params import validate_texts

BATCH_SIZE = 32
MULTI_LABEL_THRESHOLD = 0.5


class ClassifierModel(LoadedModel):
    """A sequence-classification (or regression) head.

    `classify` returns one dict per text:
    - single-label: {label, scores: {label: softmax prob}, logits: [...]}
    - multi-label: the same with sigmoid probs, plus `labels` (every label
      whose prob >= 0.5); `label` is the most probable one
    - regression: {value}
    `scores` keys and `logits` are both in label-id order.
    """

    def __init__(self, parts: ClassifierParts, **common: Any):
        super().__init__(labels=parts.labels, **common)
        self.model, self.tokenizer = parts.model, parts.tokenizer
        self.multi_label, self.regression = parts.multi_label, parts.regression

    def _logits(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = self.tokenizer(texts[start:start + BATCH_SIZE], padding=True,
                                   truncation=True, return_tensors="pt").to(self.model.device)
            with torch.inference_mode():
                chunks.append(self.model(**batch).logits.float().cpu())
        return torch.cat(chunks)

    def _classify(self, texts: list[str]) -> list[dict[str, Any]]:
        logits = self._logits(texts)
        if self.regression:
            return [{"value": float(row[0])} for row in logits]
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        results = []
        for row_logits, row_probs in zip(logits.tolist(), probs.tolist(), strict=True):
            best = max(range(len(row_probs)), key=row_probs.__getitem__)
            result: dict[str, Any] = {
                "label": self.labels[best],
                "scores": dict(zip(self.labels, row_probs, strict=True)),
                "logits": row_logits,
            }
            if self.multi_label:
                result["labels"] = [label for label, p in zip(self.labels, row_probs, strict=True)
                                    if p >= MULTI_LABEL_THRESHOLD]
            results.append(result)
        return results

    def classify(self, texts: list[str] | str) -> list[dict[str, Any]]:
        return self.run(self._classify, validate_texts(texts))

    def count_tokens(self, texts: list[str]) -> int:
        return self.run(lambda: sum(len(ids) for ids in self.tokenizer(
            list(texts), truncation=True)["input_ids"]))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "multi_label": self.multi_label,
                "regression": self.regression}


class EmbedderModel(LoadedModel):
    """A sentence-transformers encoder; vectors are exactly what `encode` returns
    (normalised only if the model itself ends with a Normalize module)."""

    def __init__(self, encoder, **common: Any):
        super().__init__(**common)
        self.encoder = encoder

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.encoder.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True,
                                      show_progress_bar=False)
        return vectors.astype("float32").tolist()

    def embed(self, texts: list[str] | str) -> list[list[float]]:
        return self.run(self._embed, validate_texts(texts))

    def count_tokens(self, texts: list[str]) -> int:
        tokenizer = self.encoder.tokenizer
        return self.run(lambda: sum(len(ids) for ids in tokenizer(
            list(texts), truncation=True)["input_ids"]))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "dimensions": _dimension(self.encoder)}


def _dimension(encoder) -> int | None:
    # sentence-transformers 6 renamed the method (the old name warns).
    getter = getattr(encoder, "get_embedding_dimension", None) \
        or encoder.get_sentence_embedding_dimension
    return getter()
