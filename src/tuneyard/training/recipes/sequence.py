"""Classification (single- or multi-label) and regression: a sequence
classification head on an encoder (MiniLM) or a causal LM (the tiny LM).

The label map (id2label/label2id) and problem_type are saved in config.json,
so a checkpoint alone says what its outputs mean.
"""

from __future__ import annotations

from tuneyard.checkpoints.reader import find_manifest, manifest_labels
from tuneyard.training.eval_loss import sequence_loss
from tuneyard.training.features import PadCollator, sequence_features
from tuneyard.training.job import JobSpec, TrainingError
from tuneyard.training.loading import load_for_training, load_tokenizer
from tuneyard.training.loop import RunContext, fit_pretrained


def _data_labels(examples: list[dict]) -> list[str]:
    names: set[str] = set()
    for example in examples:
        value = example.get("labels")
        names.update([value] if isinstance(value, str) else value or [])
    return sorted(names)


def choose_labels(spec: JobSpec) -> list[str]:
    labels = list(spec.labels) if spec.labels else _data_labels(spec.train_examples)
    if not labels:
        raise TrainingError("classification needs at least one label; the training set has none")
    # A checkpoint we continue from: its labels, in the head's row order.
    previous = manifest_labels(find_manifest(spec.model_path))
    if previous is not None:
        if set(previous) != set(labels):
            raise TrainingError(
                f"the checkpoint was trained on labels {previous}; this job has {labels}. "
                "Continue training with the same labels, or start from the base model"
            )
        labels = previous  # keep the head's row order
    if len(labels) < 2 and not spec.multi_label:
        raise TrainingError(f"single-label classification needs two labels or more, got {labels}")
    return labels


def train(spec: JobSpec, ctx: RunContext) -> dict:
    from transformers import AutoModelForSequenceClassification, set_seed

    params = ctx.params
    regression = spec.task_type == "regression"
    set_seed(params.seed)  # the new head's initialisation
    if regression:
        labels, head = None, {"num_labels": 1, "problem_type": "regression"}
    else:
        labels = choose_labels(spec)
        head = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
            "problem_type": "multi_label_classification" if spec.multi_label
            else "single_label_classification",
        }
    tokenizer = load_tokenizer(spec.model_path, base_path=spec.base_model_path)
    model, is_lora, base_ref = load_for_training(
        AutoModelForSequenceClassification, spec.model_path, params, peft_task="SEQ_CLS",
        base_path=spec.base_model_path, **head,
    )
    # Decoder models pool the last non-pad token, so they must know the pad id.
    model.config.pad_token_id = tokenizer.pad_token_id

    max_len = min(params.max_seq_length, tokenizer.model_max_length or params.max_seq_length)
    label2id = None if regression else head["label2id"]
    multi = spec.multi_label and not regression
    train_features = sequence_features(tokenizer, spec.train_examples, max_len,
                                       label2id=label2id, multi_label=multi)
    eval_features = sequence_features(tokenizer, spec.eval_examples, max_len,
                                      label2id=label2id, multi_label=multi)
    collate = PadCollator(tokenizer.pad_token_id, token_labels=False,
                          float_labels=regression or multi)

    def eval_loss(m):
        return sequence_loss(m, eval_features, collate, params.per_device_eval_batch_size)

    extra = {"is_lora": is_lora, "labels": labels, "multi_label": multi,
             "max_seq_length": max_len}
    if is_lora:
        extra["base_model_path"] = base_ref
    return fit_pretrained(ctx, model=model, tokenizer=tokenizer,
                          train_features=train_features, collate=collate, extra=extra,
                          eval_loss=eval_loss)
