"""Which dataset shapes train which task, and the record form each task receives."""

from __future__ import annotations

import pytest

from tuneyard.data import (
    TASK_TYPES,
    DatasetInfo,
    inspect_dataset,
    load_examples,
    task_fit_error,
    to_task_examples,
)


def info(shape: str) -> DatasetInfo:
    return DatasetInfo(file_format="jsonl", shape=shape, num_records=2, labels=None,
                       multi_label=False)


FITS = {
    "text-generation": {"prompt_completion", "input_output", "chat"},
    "classification": {"classification", "input_output"},
    "regression": {"regression"},
    "embedding": {"pairs"},
}
SHAPES = ["prompt_completion", "regression", "classification", "input_output", "chat", "pairs"]


def test_task_types():
    assert TASK_TYPES == ("text-generation", "classification", "regression", "embedding")


@pytest.mark.parametrize("task_type", TASK_TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_task_fit(task_type, shape):
    error = task_fit_error(info(shape), task_type)
    if shape in FITS[task_type]:
        assert error is None
    else:
        assert error is not None
        assert f"this dataset is {shape}" in error
        assert task_type in error
        for needed in FITS[task_type]:
            assert needed in error


def test_fit_error_is_a_readable_sentence():
    assert task_fit_error(info("chat"), "embedding") == (
        "an embedding task needs a dataset of shape pairs, but this dataset is chat "
        '{"messages": [{"role": ..., "content": ...}, ...]}; expected: pairs text1,text2,score '
        "(a score between 0 and 1)"
    )
    assert task_fit_error(info("pairs"), "text-generation").startswith(
        "a text-generation task needs a dataset of shape prompt_completion or input_output or "
        "chat, but this dataset is pairs")


def test_unknown_task_type_is_reported_not_raised():
    error = task_fit_error(info("chat"), "summarization")
    assert error == ("unknown task type 'summarization'; expected one of text-generation, "
                     "classification, regression, embedding")


def test_text_generation_records(write_file):
    path = write_file("d.csv", "input,expected_output\nq,a\n")
    examples = load_examples(path)
    assert to_task_examples(examples, shape="input_output", task_type="text-generation") == [
        {"prompt": "q", "completion": "a"}]
    chats = [{"messages": [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "yo"}]}]
    assert to_task_examples(chats, shape="chat", task_type="text-generation") == chats


def test_input_output_rows_become_string_labels(write_file):
    path = write_file("d.csv", "input,expected_output\ngood,pos\nbad,neg\nfine,pos\n")
    dataset = inspect_dataset(path)
    assert task_fit_error(dataset, "classification") is None
    examples = to_task_examples(load_examples(path), shape=dataset.shape,
                                task_type="classification")
    assert examples == [{"text": "good", "labels": ["pos"]}, {"text": "bad", "labels": ["neg"]},
                        {"text": "fine", "labels": ["pos"]}]


def test_classification_regression_and_embedding_records_pass_through(write_file):
    records = [{"text": "t", "labels": ["a", "b"]}]
    assert to_task_examples(records, shape="classification",
                            task_type="classification") == records
    records = [{"text": "t", "value": 2.0}]
    assert to_task_examples(records, shape="regression", task_type="regression") == records
    records = [{"text1": "a", "text2": "b", "score": 0.5}]
    assert to_task_examples(records, shape="pairs", task_type="embedding") == records


def test_records_are_copied_not_shared():
    records = [{"text": "t", "value": 2.0}]
    converted = to_task_examples(records, shape="regression", task_type="regression")
    converted[0]["value"] = 5.0
    assert records[0]["value"] == 2.0


def test_converting_to_a_task_the_shape_cannot_train_raises():
    with pytest.raises(ValueError, match="needs a dataset of shape regression"):
        to_task_examples([{"prompt": "a", "completion": "b"}], shape="prompt_completion",
                         task_type="regression")
    with pytest.raises(ValueError, match="unknown task type"):
        to_task_examples([], shape="pairs", task_type="nope")
