"""Text generation: causal-LM fine-tuning (full or LoRA) on prompt/completion
or chat records, with the loss on completion / assistant tokens only."""

from __future__ import annotations

from tuneyard.training.eval_loss import causal_lm_loss
from tuneyard.training.features import PadCollator, text_generation_features
from tuneyard.training.job import JobSpec, TrainingError
from tuneyard.training.loading import load_for_training, load_tokenizer
from tuneyard.training.loop import RunContext, fit_pretrained


def train(spec: JobSpec, ctx: RunContext) -> dict:
    from transformers import AutoModelForCausalLM, set_seed

    params = ctx.params
    set_seed(params.seed)  # LoRA initialisation is random too
    tokenizer = load_tokenizer(spec.model_path, base_path=spec.base_model_path)
    model, is_lora, base_ref = load_for_training(
        AutoModelForCausalLM, spec.model_path, params, peft_task="CAUSAL_LM",
        base_path=spec.base_model_path,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    max_len = params.max_seq_length
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions:
        max_len = min(max_len, positions)

    train_features = text_generation_features(tokenizer, spec.train_examples, max_len)
    if not train_features:
        raise TrainingError(
            "no training example has a completion (or assistant turn) to learn from "
            f"within max_seq_length={max_len} tokens"
        )
    eval_features = text_generation_features(tokenizer, spec.eval_examples, max_len)
    collate = PadCollator(tokenizer.pad_token_id, token_labels=True)

    def eval_loss(m):
        return causal_lm_loss(m, eval_features, collate, params.per_device_eval_batch_size)

    extra = {"is_lora": is_lora, "labels": None, "max_seq_length": max_len}
    if is_lora:
        extra["base_model_path"] = base_ref
    return fit_pretrained(ctx, model=model, tokenizer=tokenizer,
                          train_features=train_features, collate=collate, extra=extra,
                          eval_loss=eval_loss)
