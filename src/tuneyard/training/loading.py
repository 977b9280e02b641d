"""Loading the model a job starts from: a base model, or (continued training)
a published checkpoint, full or LoRA, and wrapping it in a fresh LoRA adapter
when the job asks for one.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneyard.training.job import TrainingError
from tuneyard.training.params import TrainingParameters
from tuneyard.training.runtime import load_kwargs


def adapter_config(model_path: str) -> dict | None:
    """The adapter_config.json of a LoRA checkpoint directory, else None."""
    path = Path(model_path) / "adapter_config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_tokenizer(model_path: str, *, base_path: str | None = None):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, **_tok_kwargs())
    except (OSError, ValueError):
        if base_path is None:
            raise
        tokenizer = AutoTokenizer.from_pretrained(base_path, **_tok_kwargs())
    if tokenizer.pad_token_id is None:
        # Many causal LMs ship without a pad token; padded positions are masked
        # out of attention and loss, so reusing EOS is harmless.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _tok_kwargs() -> dict:
    return {"local_files_only": load_kwargs()["local_files_only"]}


def lora_config(params: TrainingParameters, task_type: str):
    from peft import LoraConfig

    # Every linear layer (attention and MLP, never the output head), not just
    # the attention projections: it learns markedly better for the same rank
    # (the QLoRA finding) and needs no per-architecture module names.
    targets = "all-linear"
    return LoraConfig(
        task_type=task_type,
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=targets,
    )


def load_for_training(
    auto_class,
    model_path: str,
    params: TrainingParameters,
    *,
    peft_task: str,
    base_path: str | None = None,
    **model_kwargs,
):
    """(model, is_lora, base_reference) for `auto_class` (e.g. AutoModelForCausalLM).

    A LoRA checkpoint keeps training its adapter whatever `use_lora` says
    (its base weights are not in the checkpoint); a full model gets a fresh
    adapter when `use_lora` is set.
    """
    adapter = adapter_config(model_path)
    kwargs = {**load_kwargs(), **model_kwargs}
    if adapter is not None:
        from peft import PeftModel

        base = base_path or adapter.get("base_model_name_or_path")
        if not base:
            raise TrainingError(f"LoRA checkpoint {model_path} does not name its base model")
        if base.startswith(("/", "~")) and not Path(base).expanduser().exists():
            raise TrainingError(
                f"the base model of LoRA checkpoint {model_path} is not on this machine: {base}"
            )
        model = auto_class.from_pretrained(base, **kwargs)
        model = PeftModel.from_pretrained(model, model_path, is_trainable=True)
        return model, True, base
    model = auto_class.from_pretrained(model_path, **kwargs)
    if params.use_lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(params, peft_task))
        return model, True, model_path
    return model, False, model_path
