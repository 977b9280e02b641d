"""Trainer arguments from tuneyard parameters, and failures made readable."""

import pytest
import torch

from tuneyard.models.resolve import ModelUnavailable
from tuneyard.training import TrainingError, resolve_parameters
from tuneyard.training.params import TrainingParameters
from tuneyard.training.runtime import clear_errors, trainer_arguments


def _args(tmp_path, **raw):
    return trainer_arguments(TrainingParameters(**resolve_parameters(raw)), output_dir=tmp_path)


def test_parameters_map_onto_trainer_arguments(tmp_path):
    args = _args(tmp_path, learning_rate="0.01", warmup_ratio=0.1, gradient_accumulation_steps=2,
                 lr_scheduler_type="cosine", optim="sgd", max_steps=7, seed=3)
    assert args.learning_rate == 0.01 and args.max_steps == 7 and args.seed == 3
    assert args.warmup_steps == 0.1  # transformers 5: a float below 1 is a ratio
    assert args.get_warmup_steps(100) == 10
    assert args.gradient_accumulation_steps == 2
    assert args.lr_scheduler_type == "cosine" and args.optim == "sgd"
    assert args.save_strategy == "no" and args.eval_strategy == "no"  # the publisher decides
    assert args.report_to == []  # no wandb, tensorboard, ... from a worker
    if not torch.cuda.is_available():
        assert args.use_cpu and not args.bf16 and not args.fp16
    assert _args(tmp_path, warmup_steps=5, warmup_ratio=0.5).warmup_steps == 5


def test_failures_become_training_errors():
    with pytest.raises(TrainingError, match="out of GPU memory: lower per_device_train_batch"):
        with clear_errors("m"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    with pytest.raises(TrainingError, match="cannot be loaded offline"):
        with clear_errors("m"):
            raise ModelUnavailable("model 'x' cannot be loaded offline: not in the cache")
    with pytest.raises(KeyError):  # a bug stays a bug, with its traceback
        with clear_errors("m"):
            raise KeyError("input_ids")
