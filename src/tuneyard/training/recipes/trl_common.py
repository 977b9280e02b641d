"""What the TRL recipes (DPO: preference.py, GRPO: grpo.py) share: the policy model
to start from, TRL's config built from tuneyard's parameters, the per-step
metrics report, and the checkpoint saver.

TRL's trainers are transformers Trainers, so they run through the same
`loop.fit` as supervised training: the same checkpoint publisher (snapshot,
background writer, manifest-last publish), resume, cancel and timeout.
"""

from __future__ import annotations

from pathlib import Path

from tuneyard.checkpoints.reader import describe_model, load_kwargs
from tuneyard.training.job import JobSpec
from tuneyard.training.loading import load_tokenizer, lora_config
from tuneyard.training.params import TrainingParameters
from tuneyard.training.runtime import device, trainer_arguments


def load_policy(spec: JobSpec, params: TrainingParameters):
    """(tokenizer, model, peft_config, is_lora, base_reference).

    A LoRA checkpoint (continued training) keeps training its adapter; a full
    model gets `peft_config` for a fresh adapter when the job asks for LoRA, and
    the trainer wraps it (its reference is then the model with the adapter off,
    no second copy).
    """
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(spec.model_path, base_path=spec.base_model_path)
    source = describe_model(spec.model_path, base_model_path=spec.base_model_path)
    kwargs = load_kwargs(device=str(device()), training=True)
    if source.is_adapter:
        from peft import PeftModel

        model = AutoModelForCausalLM.from_pretrained(source.base_model_path, **kwargs)
        model = PeftModel.from_pretrained(model, spec.model_path, is_trainable=True)
        peft_config, is_lora, base_ref = None, True, source.base_model_path
    else:
        model = AutoModelForCausalLM.from_pretrained(spec.model_path, **kwargs)
        peft_config = lora_config(params, "CAUSAL_LM") if params.use_lora else None
        is_lora, base_ref = peft_config is not None, spec.model_path
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model, peft_config, is_lora, base_ref


def max_length(model, params: TrainingParameters) -> int:
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(params.max_seq_length, positions) if positions else params.max_seq_length


def config(params: TrainingParameters, *, output_dir: Path, config_class, **extra):
    """TRL's config from tuneyard's parameters; gradient checkpointing off (TRL turns
    it on by default: it trades a third more compute for memory small models do not need)."""
    return trainer_arguments(params, output_dir=output_dir, args_class=config_class,
                             gradient_checkpointing=False, **extra)


def saver(tokenizer):
    """A publisher `save_model`: the model (only the trained adapter of a PEFT model:
    DPO may add a frozen "ref" copy of a continued adapter) and the tokenizer."""
    import copy

    tokenizer = copy.deepcopy(tokenizer)  # the writer thread's own

    def save_model(model, directory: Path) -> None:
        if hasattr(model, "peft_config") and "default" in model.peft_config:
            model.save_pretrained(directory, selected_adapters=["default"])
        else:
            model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    return save_model


def no_eval_loss(model) -> None:
    """DPO and GRPO have no supervised eval loss; their checkpoints are judged by the
    evaluation (preference accuracy, reward), outside the training loop."""
    return None
