"""Embedding fine-tuning of MiniLM with CosineSimilarityLoss; checkpoints in
sentence-transformers format."""

import tarfile

import pytest
import torch
import torch.nn.functional as F

from tuneyard.checkpoints.reader import verify_checkpoint
from tuneyard.checkpoints.writer import build_model_archive
from tuneyard.training import JobSpec, TrainingError, resolve_parameters, run_job

pytestmark = pytest.mark.slow


def _pairs(sentiment):
    pos = [t for t, p in sentiment if p]
    neg = [t for t, p in sentiment if not p]
    similar = [{"text1": a, "text2": b, "score": 1.0} for a, b in zip(pos, pos[1:], strict=False)]
    similar += [{"text1": a, "text2": b, "score": 1.0} for a, b in zip(neg, neg[1:], strict=False)]
    different = [{"text1": a, "text2": b, "score": 0.0} for a, b in zip(pos, neg, strict=True)]
    return similar + different


def _spec(model, train, evaluation, **params):
    hp = {"num_train_epochs": 2, "learning_rate": 5e-5, "per_device_train_batch_size": 8,
          "logging_steps": 1, "max_seq_length": 32, **params}
    return JobSpec(job_id="tr-emb", task_type="embedding", base_model="all-MiniLM-L6-v2",
                   model_path=str(model), train_examples=train, eval_examples=evaluation,
                   hyper_parameters=resolve_parameters(hp))


def _recompute(model, pairs) -> float:
    a = model.encode([p["text1"] for p in pairs], convert_to_tensor=True)
    b = model.encode([p["text2"] for p in pairs], convert_to_tensor=True)
    target = torch.tensor([p["score"] for p in pairs])
    return F.mse_loss(F.cosine_similarity(a, b), target).item()


def test_embedding_trains_and_reloads(tmp_path, minilm, sentiment, events):
    from sentence_transformers import SentenceTransformer

    pairs = _pairs(sentiment)
    evaluation = pairs[::3]
    summary = run_job(_spec(minilm, pairs, evaluation), workdir=tmp_path, events=events)
    assert [n for n, _, _ in events.checkpoints] == [1, 2]
    assert summary["steps"] == 6 and summary["stopped"] is False
    losses = [m["eval_loss"] for _, _, m in events.checkpoints]
    assert losses[-1] < losses[0] < summary["initial_eval_loss"]
    _, path, manifest = events.checkpoints[-1]
    verify_checkpoint(path)
    assert {"modules.json", "1_Pooling/config.json", "model.safetensors"} <= set(manifest["files"])
    assert manifest["task_type"] == "embedding" and manifest["is_lora"] is False
    model = SentenceTransformer(str(path), device="cpu")
    assert _recompute(model, evaluation) == pytest.approx(manifest["eval_loss"], abs=1e-4)

    # The downloadable archive (nested module folders included) loads the same model.
    build_model_archive(path, tmp_path / "model.tar")
    with tarfile.open(tmp_path / "model.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    model = SentenceTransformer(str(tmp_path / "x"), device="cpu")
    assert _recompute(model, evaluation) == pytest.approx(manifest["eval_loss"], abs=1e-4)


def test_embedding_refuses_lora(tmp_path, minilm, sentiment, events):
    with pytest.raises(TrainingError, match="LoRA is not supported for embedding"):
        run_job(_spec(minilm, _pairs(sentiment), [], use_lora=True), workdir=tmp_path,
                events=events)
