"""GRPO: group relative policy optimisation (TRL's GRPOTrainer), rewarded by a
weighted sum of test functions (`training.reward`), checkpointed like every
other recipe.

Each prompt's `num_generations` sampled completions are scored against the
record's expected output (its completion); the trainer pushes up the ones
scoring above their group's mean. Chat records train on the conversation
before the last assistant turn, that turn being the expected output.
"""

from __future__ import annotations

from pathlib import Path

from tuneyard.training.job import JobSpec, TrainingError
from tuneyard.training.loop import RunContext, fit
from tuneyard.training.recipes.trl_common import (
    config,
    load_policy,
    max_length,
    no_eval_loss,
    saver,
)
from tuneyard.training.reward import WeightedReward


def prompt_rows(examples: list[dict]) -> dict[str, list]:
    """{prompt, expected} columns: what is generated from, what the reward compares with."""
    columns: dict[str, list] = {"prompt": [], "expected": []}
    for example in examples:
        if "messages" in example:
            messages = example["messages"]
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"),
                       default=None)
            if last is None:
                continue
            columns["prompt"].append(messages[:last])
            columns["expected"].append(messages[last]["content"])
        else:
            columns["prompt"].append(example["prompt"])
            columns["expected"].append(example["completion"])
    return columns


def make_reward(spec: JobSpec) -> WeightedReward:
    if not spec.reward:
        raise TrainingError("a GRPO job needs a reward: test function name -> weight")
    try:
        return WeightedReward(spec.reward, home=Path(spec.functions_home or "."))
    except (KeyError, ValueError, ImportError, SyntaxError) as exc:
        raise TrainingError(f"reward: {exc}") from exc


def train(spec: JobSpec, ctx: RunContext) -> dict:
    from datasets import Dataset
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    params = ctx.params
    set_seed(params.seed)
    reward = make_reward(spec)
    tokenizer, model, peft_config, is_lora, base_ref = load_policy(spec, params)
    rows = prompt_rows(spec.train_examples)
    if not rows["prompt"]:
        raise TrainingError("no training record has a prompt to generate from")
    if rows["prompt"] and isinstance(rows["prompt"][0], list) and not tokenizer.chat_template:
        raise TrainingError("the base model's tokenizer has no chat template, so it cannot "
                            "train on chat (messages) records")
    batch = params.per_device_train_batch_size * params.gradient_accumulation_steps
    if batch % params.num_generations:
        raise TrainingError(f"per_device_train_batch_size x gradient_accumulation_steps "
                            f"({batch}) must be a multiple of num_generations "
                            f"({params.num_generations})")
    max_len = max_length(model, params)
    args = config(params, output_dir=ctx.trainer_dir, config_class=GRPOConfig,
                  beta=params.beta, num_generations=params.num_generations,
                  max_completion_length=min(params.max_completion_length, max_len),
                  temperature=params.temperature, log_completions=False)
    extra = {"is_lora": is_lora, "labels": None, "max_seq_length": max_len,
             "training_technique": "GRPO", "reward": dict(spec.reward)}
    if is_lora:
        extra["base_model_path"] = base_ref
    publisher = ctx.publisher(extra=extra, eval_loss=no_eval_loss, save_model=saver(tokenizer))
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=args,
        train_dataset=Dataset.from_dict(rows), processing_class=tokenizer,
        peft_config=peft_config, callbacks=[publisher],
    )
    return fit(trainer, publisher, ctx, initial_eval_loss=None)
