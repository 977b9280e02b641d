"""Embedding: fine-tune a sentence-transformers model on (text1, text2, score)
pairs with CosineSimilarityLoss. Checkpoints are in sentence-transformers
format (modules.json, pooling config, ...): `SentenceTransformer(path)` loads one.
"""

from __future__ import annotations

from pathlib import Path

from tuneyard.models.resolve import hub_offline
from tuneyard.training.eval_loss import embedding_loss
from tuneyard.training.job import JobSpec, TrainingError
from tuneyard.training.loop import RunContext, fit
from tuneyard.training.runtime import device, trainer_arguments


def _pairs(examples: list[dict]) -> dict[str, list]:
    return {
        "sentence1": [str(e["text1"]) for e in examples],
        "sentence2": [str(e["text2"]) for e in examples],
        "score": [float(e["score"]) for e in examples],
    }


def train(spec: JobSpec, ctx: RunContext) -> dict:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from transformers import set_seed

    params = ctx.params
    if params.use_lora:
        raise TrainingError(
            "LoRA is not supported for embedding models yet; set use_lora=false"
        )
    set_seed(params.seed)
    model = SentenceTransformer(
        spec.model_path, device=str(device()), local_files_only=hub_offline()
    )
    model.max_seq_length = min(params.max_seq_length, model.max_seq_length or params.max_seq_length)
    eval_pairs = list(spec.eval_examples)

    def eval_loss(m):
        return embedding_loss(m, eval_pairs, params.per_device_eval_batch_size)

    def save_model(shadow, directory: Path) -> None:
        # No model card: writing README.md encodes sample inputs at every
        # save (seconds per checkpoint) for a file no checkpoint needs.
        # The module layout and tokenizer are saved as usual.
        shadow.save_pretrained(str(directory), create_model_card=False)

    publisher = ctx.publisher(
        extra={"is_lora": False, "labels": None, "max_seq_length": model.max_seq_length},
        eval_loss=eval_loss,
        save_model=save_model,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=trainer_arguments(params, output_dir=ctx.trainer_dir,
                               args_class=SentenceTransformerTrainingArguments),
        train_dataset=Dataset.from_dict(_pairs(spec.train_examples)),
        loss=CosineSimilarityLoss(model),
        callbacks=[publisher],
    )
    initial = ctx.initial_eval_loss(eval_loss, trainer.model)
    return fit(trainer, publisher, ctx, initial_eval_loss=initial)
