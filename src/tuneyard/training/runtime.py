"""Where and how a job computes: device, precision, Trainer arguments, quiet
logs, and turning library failures into `TrainingError`s a user can act on.

Imported only inside the training child process (torch at import time).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from tuneyard.checkpoints import CheckpointError
from tuneyard.models.resolve import ModelUnavailable, hub_offline
from tuneyard.training.job import TrainingError
from tuneyard.training.params import TrainingParameters


def use_cuda() -> bool:
    return torch.cuda.is_available()


def device() -> torch.device:
    return torch.device("cuda" if use_cuda() else "cpu")


def precision() -> dict[str, bool]:
    """bf16 where the GPU has it, else fp16 on GPU, else fp32 on CPU.

    Weights stay fp32 (autocast only): the optimizer state of a small model
    fine-tuned in pure half precision drifts.
    """
    if not use_cuda():
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def quiet_libraries() -> None:
    """Progress bars and info logs of the libraries go nowhere useful in a child
    process; the worker records progress and loss through TrainingEvents."""
    import transformers

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("sentence_transformers", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def trainer_arguments(params: TrainingParameters, *, output_dir: Path, args_class=None, **extra):
    """Trainer arguments from tuneyard's parameters.

    Saving and evaluation are off here: the checkpoint publisher callback
    decides when to save (one schedule for every recipe, no duplicate final
    save) and computes the eval loss itself.
    """
    if args_class is None:
        from transformers import TrainingArguments as args_class
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
    warmup = params.warmup_steps if params.warmup_steps > 0 else params.warmup_ratio
    return args_class(
        output_dir=str(output_dir),
        num_train_epochs=params.num_train_epochs,
        max_steps=params.max_steps,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.per_device_train_batch_size,
        per_device_eval_batch_size=params.per_device_eval_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        weight_decay=params.weight_decay,
        warmup_steps=warmup,
        lr_scheduler_type=params.lr_scheduler_type,
        optim=params.optim,
        logging_strategy="steps",
        logging_steps=params.logging_steps,
        seed=params.seed,
        data_seed=params.seed,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not use_cuda(),
        dataloader_pin_memory=use_cuda(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        **precision(),
        **extra,
    )


def not_offline_message(model: str) -> str:
    return f"model '{model}' cannot be loaded offline: not in the local Hugging Face cache"


@contextlib.contextmanager
def clear_errors(base_model: str) -> Iterator[None]:
    """Re-raise the failures a user can act on as TrainingError with a plain message."""
    try:
        yield
    except TrainingError:
        raise
    except ModelUnavailable as exc:
        raise TrainingError(exc.message) from exc
    except CheckpointError as exc:  # the checkpoint to continue from is unusable
        raise TrainingError(str(exc)) from exc
    except torch.OutOfMemoryError as exc:
        raise TrainingError(
            "out of GPU memory: lower per_device_train_batch_size (raising "
            "gradient_accumulation_steps to keep the effective batch), lower "
            "max_seq_length, or set use_lora=true"
        ) from exc
    except OSError as exc:
        # from_pretrained raises OSError for a model it cannot find locally
        # (offline) or whose files are missing.
        text = str(exc)
        if hub_offline() and ("offline" in text.lower() or "local_files_only" in text
                              or "couldn't connect" in text.lower()):
            raise TrainingError(not_offline_message(base_model)) from exc
        raise
