"""The eval loss recorded in every checkpoint's manifest.

Each is defined so that it does not depend on batch size or padding, so it
can be recomputed from the published files alone:

- causal LM: mean cross-entropy over all trained (non -100) target tokens of
  the eval set (token-weighted, not a mean of per-batch means);
- sequence classification / regression: mean over examples of the model's
  own loss (CE, BCE-with-logits averaged over labels, or MSE);
- embedding: mean over pairs of (cos(e1, e2) - score)^2, as CosineSimilarityLoss.

Computed in fp32 without autocast, in eval mode; the model's train/eval mode
is restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def _evaluating(model) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def causal_lm_loss(model, features: list[dict], collate: Callable, batch_size: int) -> float | None:
    if not features:
        return None
    total, count = 0.0, 0
    with _evaluating(model):
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            batch = {k: v.to(_device(model)) for k, v in collate(chunk).items()}
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
            targets = batch["labels"][:, 1:]
            total += F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            ).item()
            count += int((targets != -100).sum())
    return total / count if count else None


def sequence_loss(model, features: list[dict], collate: Callable, batch_size: int) -> float | None:
    if not features:
        return None
    total = 0.0
    with _evaluating(model):
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            batch = {k: v.to(_device(model)) for k, v in collate(chunk).items()}
            total += model(**batch).loss.float().item() * len(chunk)
    return total / len(features)


def embedding_loss(model, pairs: list[dict], batch_size: int) -> float | None:
    """`model` is a SentenceTransformer; pairs are {text1, text2, score} records."""
    if not pairs:
        return None
    with _evaluating(model):
        first = model.encode([p["text1"] for p in pairs], batch_size=batch_size,
                             convert_to_tensor=True, show_progress_bar=False)
        second = model.encode([p["text2"] for p in pairs], batch_size=batch_size,
                              convert_to_tensor=True, show_progress_bar=False)
        cosine = F.cosine_similarity(first.float(), second.float())
        scores = torch.tensor([float(p["score"]) for p in pairs], device=cosine.device)
        return F.mse_loss(cosine, scores).item()
