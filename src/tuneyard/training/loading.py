"""Loading the model a job starts from: a base model, or (continued training)
a published checkpoint, full or LoRA, and wrapping it in a fresh LoRA adapter
when the job asks for one. What a directory holds is the checkpoint reader's
call (`tuneyard.checkpoints.reader.describe_model`).
"""

from __future__ import annotations

from tuneyard.checkpoints.reader import describe_model, load_kwargs
from tuneyard.models.resolve import hub_offline
from tuneyard.training.params import TrainingParameters
from tuneyard.training.runtime import device


def load_tokenizer(model_path: str, *, base_path: str | None = None):
    from transformers import AutoTokenizer

    source = describe_model(model_path, base_model_path=base_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_source,
                                                  local_files_only=hub_offline())
    except (OSError, ValueError):
        # A full checkpoint saved without a tokenizer: the base model's fits it.
        if base_path is None:
            raise
        tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=hub_offline())
    if tokenizer.pad_token_id is None:
        # Many causal LMs ship without a pad token; padded positions are masked
        # out of attention and loss, so reusing EOS is harmless.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


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
    source = describe_model(model_path, base_model_path=base_path)
    kwargs = {**load_kwargs(device=str(device()), training=True), **model_kwargs}
    if source.is_adapter:
        from peft import PeftModel

        model = auto_class.from_pretrained(source.base_model_path, **kwargs)
        model = PeftModel.from_pretrained(model, model_path, is_trainable=True)
        return model, True, source.base_model_path
    model = auto_class.from_pretrained(model_path, **kwargs)
    if params.use_lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(params, peft_task))
        return model, True, model_path
    return model, False, model_path
