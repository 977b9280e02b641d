"""Sampling, message and input validation: pure Python, errors name the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tuneyard.serving.errors import InvalidRequest, SamplingError
from tuneyard.serving.params import (
    sampling_from_body,
    validate_messages,
    validate_sampling,
    validate_texts,
)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"temperature": -0.1}, "temperature", ">= 0"),
        ({"temperature": "hot"}, "temperature", "number"),
        ({"temperature": float("nan")}, "temperature", "finite"),
        ({"top_p": 0}, "top_p", "(0, 1]"),
        ({"top_p": 1.5}, "top_p", "(0, 1]"),
        ({"top_k": -1}, "top_k", ">= 0"),
        ({"top_k": 2.5}, "top_k", "integer"),
        ({"max_new_tokens": 0}, "max_new_tokens", "at least 1"),
        ({"max_new_tokens": 2049}, "max_new_tokens", "at most 2048"),
        ({"max_new_tokens": True}, "max_new_tokens", "number"),
        ({"no_repeat_ngram_size": -2}, "no_repeat_ngram_size", ">= 0"),
        ({"do_sample": "yes"}, "do_sample", "true or false"),
        ({"stop": 5}, "stop", "string"),
        ({"stop": [""]}, "stop", "empty"),
    ],
)
def test_bad_values_name_their_field(kwargs, field, words):
    with pytest.raises(SamplingError) as info:
        validate_sampling(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(field)
    assert words in str(info.value)


def test_limit_is_configurable_and_the_message_uses_the_clients_field_name():
    assert validate_sampling(max_new_tokens=100, max_tokens_limit=100).max_new_tokens == 100
    with pytest.raises(SamplingError, match="max_tokens must be at most 100"):
        sampling_from_body({"max_tokens": 101}, max_tokens_limit=100)
    with pytest.raises(SamplingError, match="max_completion_tokens must be at least 1"):
        sampling_from_body({"max_completion_tokens": 0})
    assert sampling_from_body({"max_completion_tokens": 7}).max_new_tokens == 7
    assert sampling_from_body({"max_new_tokens": 5, "max_tokens": 9}).max_new_tokens == 5


def test_defaults_and_greedy_policy():
    plain = validate_sampling()
    assert plain.do_sample is False and plain.max_new_tokens == 256
    assert validate_sampling(default_max_new_tokens=3000).max_new_tokens == 2048

    # temperature 0 is greedy even when sampling is asked for; greedy drops
    # the sampling knobs (transformers would warn about them).
    zero = validate_sampling(temperature=0, do_sample=True, top_p=0.5, top_k=3)
    assert zero.do_sample is False
    assert (zero.temperature, zero.top_p, zero.top_k) == (None, None, None)

    warm = validate_sampling(temperature=0.7, top_p=0.9, top_k=40)
    assert warm.do_sample is True
    assert (warm.temperature, warm.top_p, warm.top_k) == (0.7, 0.9, 40)
    assert validate_sampling(top_p=0.9).do_sample is False  # top_p alone stays greedy
    assert validate_sampling(do_sample=True).do_sample is True
    assert validate_sampling(temperature=0.7, do_sample=False).do_sample is False

    kwargs = validate_sampling(stop="END", no_repeat_ngram_size=2).as_kwargs()
    assert kwargs["stop"] == ["END"] and kwargs["no_repeat_ngram_size"] == 2


def test_messages_and_texts():
    ok = validate_messages([{"role": "user", "content": "hi", "name": "x"}])
    assert ok == [{"role": "user", "content": "hi"}]
    for bad, words in [([], "non-empty"), ([{"role": "robot", "content": "x"}], "role"),
                       ([{"role": "user", "content": 3}], "content"), ("hi", "non-empty")]:
        with pytest.raises(InvalidRequest, match=words) as info:
            validate_messages(bad)
        assert info.value.field == "messages"
    assert validate_texts("a") == ["a"]
    with pytest.raises(InvalidRequest, match="input must be"):
        validate_texts([1])
    with pytest.raises(InvalidRequest, match="at most 2"):
        validate_texts(["a", "b", "c"], max_items=2)


def test_light_modules_import_without_torch():
    code = ("import sys, tuneyard.serving.params, tuneyard.serving.openai_format, "
            "tuneyard.serving.process, tuneyard.serving.loaded; "
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
