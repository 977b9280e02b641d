"""DPO: direct preference optimisation (TRL's DPOTrainer) on {prompt, chosen,
rejected} records, full or LoRA, checkpointed like every other recipe.

Text records train as they are (TRL appends EOS to both answers); chat
records (message lists) go through the tokenizer's chat template. A prompt
given as text with message answers becomes one user message. Each logging
step reports TRL's reward accuracy and margins through `events.metrics`.
"""

from __future__ import annotations

import copy

from tuneyard.training.job import JobSpec, TrainingError
from tuneyard.training.loop import RunContext, fit
from tuneyard.training.recipes.trl_common import (
    config,
    load_policy,
    max_length,
    no_eval_loss,
    saver,
)


def preference_rows(examples: list[dict]) -> dict[str, list]:
    """Columns for `datasets.Dataset.from_dict`, in TRL's preference format."""
    columns: dict[str, list] = {"prompt": [], "chosen": [], "rejected": []}
    for example in examples:
        prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
        if isinstance(chosen, list) and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}] if prompt else []
        columns["prompt"].append(prompt)
        columns["chosen"].append(chosen)
        columns["rejected"].append(rejected)
    return columns


def train(spec: JobSpec, ctx: RunContext) -> dict:
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    params = ctx.params
    set_seed(params.seed)  # LoRA initialisation is random too
    tokenizer, model, peft_config, is_lora, base_ref = load_policy(spec, params)
    rows = preference_rows(spec.train_examples)
    if any(isinstance(c, list) for c in rows["chosen"]) and not tokenizer.chat_template:
        raise TrainingError("the base model's tokenizer has no chat template, so it cannot "
                            "train on chat (messages) preference records; use text records "
                            "or a chat model")
    max_len = max_length(model, params)
    # A full fine-tune's reference is the starting model, frozen; with LoRA
    # the trainer disables the adapter instead (no copy).
    reference = None
    if peft_config is None and not is_lora:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    args = config(params, output_dir=ctx.trainer_dir, config_class=DPOConfig,
                  beta=params.beta, max_length=max_len)
    extra = {"is_lora": is_lora, "labels": None, "max_seq_length": max_len,
             "training_technique": "DPO"}
    if is_lora:
        extra["base_model_path"] = base_ref
    publisher = ctx.publisher(extra=extra, eval_loss=no_eval_loss, save_model=saver(tokenizer))
    trainer = DPOTrainer(
        model=model, ref_model=reference, args=args,
        train_dataset=Dataset.from_dict(rows), processing_class=tokenizer,
        peft_config=peft_config, callbacks=[publisher],
    )
    return fit(trainer, publisher, ctx, initial_eval_loss=None)
