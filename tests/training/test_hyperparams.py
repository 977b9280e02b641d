"""Hyperparameter resolution: defaults < base model template < request."""

import json
import subprocess
import sys

import pytest

from tuneyard.training.params import (
    ALLOWED,
    FIELD_HELP,
    ParameterError,
    TrainingParameters,
    resolve_parameters,
)


def test_defaults_template_then_request():
    out = resolve_parameters(
        {"learning_rate": 0.01}, template={"learning_rate": 0.003, "num_train_epochs": 10}
    )
    assert out["learning_rate"] == 0.01
    assert out["num_train_epochs"] == 10.0
    assert out["save_strategy"] == "epoch" and out["max_steps"] == -1
    assert set(out) == set(ALLOWED)
    json.dumps(out)  # becomes the job's hyper_parameters column


def test_strings_are_accepted_for_numbers_and_booleans():
    out = resolve_parameters(
        {"learning_rate": "0.001", "max_steps": "20", "use_lora": "true", "lora_dropout": "0"}
    )
    assert out["learning_rate"] == 0.001 and isinstance(out["learning_rate"], float)
    assert out["max_steps"] == 20 and isinstance(out["max_steps"], int)
    assert out["use_lora"] is True
    assert out["lora_dropout"] == 0.0


def test_unknown_name_lists_allowed_names():
    with pytest.raises(ParameterError) as info:
        resolve_parameters({"lr": 0.1})
    message = str(info.value)
    assert message.startswith("unknown parameter 'lr'; allowed: ")
    assert "gradient_accumulation_steps, greater_is_better" in message
    assert "learning_rate" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"learning_rate": "fast"}, "learning_rate must be a number > 0 and <= 10, got 'fast'"),
        ({"learning_rate": 0}, "learning_rate must be a number > 0 and <= 10, got 0"),
        ({"downsample_size": 0}, "downsample_size must be a whole number >= 1 and <= 100, got 0"),
        ({"max_steps": 0}, "max_steps must be a whole number >= 1 and <= 10000000 (or -1), "
                           "got 0"),
        ({"per_device_train_batch_size": 2.5}, "per_device_train_batch_size must be a whole"),
        ({"optim": "adam9"}, "optim must be one of adamw_torch"),
        ({"use_lora": "maybe"}, "use_lora must be true or false, got 'maybe'"),
        ({"learning_rate": True}, "learning_rate must be a number > 0 and <= 10, got True"),
        ({"warmup_ratio": 1}, "warmup_ratio must be a number >= 0 and < 1, got 1"),
        ({"seed": 2**63}, "seed must be a whole number >= 0 and < 4294967296"),
        ({"max_steps": 10**400}, "max_steps must be a whole number >= 1 and <= 10000000 (or -1), "
                                 "got an integer of about 400 digits"),
        ({"learning_rate": 10**400}, "learning_rate must be a number > 0 and <= 10"),
        ({"num_train_epochs": float("nan")}, "num_train_epochs must be a number > 0 and <= 1000"),
        ({"num_train_epochs": 1e300}, "num_train_epochs must be a number > 0 and <= 1000"),
        ({"lora_r": "1e400"}, "lora_r must be a whole number >= 1 and <= 1024"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(raw, expected):
    with pytest.raises(ParameterError) as info:
        resolve_parameters(raw)
    assert expected in str(info.value)


def test_every_problem_is_reported_and_template_problems_are_labelled():
    with pytest.raises(ParameterError) as info:
        resolve_parameters({"seed": -1, "bogus": 1}, template={"nope": 2})
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("base model parameter_template: unknown parameter 'nope'")


def test_every_field_has_help_and_resolves_to_the_dataclass():
    assert set(FIELD_HELP) == set(ALLOWED)
    assert all(text.strip() for text in FIELD_HELP.values())
    params = TrainingParameters(**resolve_parameters({"greater_is_better": "false"}))
    assert params.greater_is_better is False


def test_params_module_does_not_import_torch():
    code = (
        "import sys, tuneyard.training, tuneyard.training.params,"
        " tuneyard.checkpoints.writer, tuneyard.checkpoints.reader, tuneyard.models;"
        " print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_an_object_with_hundreds_of_keys_is_refused_whole():
    from tuneyard.training.params import MAX_GIVEN

    with pytest.raises(ParameterError) as info:
        resolve_parameters({f"k{i}": 1 for i in range(MAX_GIVEN + 1)})
    assert len(info.value.problems) == 1 and f"{MAX_GIVEN + 1} given" in str(info.value)
