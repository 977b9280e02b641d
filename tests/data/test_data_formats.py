"""Every accepted file format carrying every record shape: detected, counted and normalized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneyard.data import DatasetInfo, DatasetValidationError, inspect_dataset, load_examples
from tuneyard.data.readers import detect_format

TEXT = [{"prompt": "Capital of France?", "completion": "Paris"},
        {"prompt": "Capital of Spain?", "completion": "Madrid, of course"}]
NUMBERS = [{"prompt": "How hot is 'scorching'?", "completion": 0.9},
           {"prompt": "How hot is 'cold'?", "completion": 0.1},
           {"prompt": "How hot is 'warm'?", "completion": 3}]
CLASSES = [{"prompt": "great film", "completion": {"positive": 1, "negative": 0}},
           {"prompt": "awful film", "completion": {"positive": 0, "negative": 1}},
           {"prompt": "fine film", "completion": {"positive": 1, "negative": 0}}]
IO = [{"input": "2+2", "expected_output": "4"}, {"input": "3+3", "expected_output": "6"}]
CHATS = [{"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello."}]},
         {"messages": [{"role": "user", "content": "Bye"},
                       {"role": "assistant", "content": "Goodbye."}]}]
PAIRS = [{"text1": "a cat", "text2": "a kitten", "score": 0.9},
         {"text1": "a cat", "text2": "a truck", "score": 0.05},
         {"text1": "same", "text2": "same", "score": 1}]

NORMALIZED_TEXT = [{"prompt": "Capital of France?", "completion": "Paris"},
                   {"prompt": "Capital of Spain?", "completion": "Madrid, of course"}]
NORMALIZED_NUMBERS = [{"text": "How hot is 'scorching'?", "value": 0.9},
                      {"text": "How hot is 'cold'?", "value": 0.1},
                      {"text": "How hot is 'warm'?", "value": 3.0}]
NORMALIZED_CLASSES = [{"text": "great film", "labels": ["positive"]},
                      {"text": "awful film", "labels": ["negative"]},
                      {"text": "fine film", "labels": ["positive"]}]
NORMALIZED_IO = [{"prompt": "2+2", "completion": "4"}, {"prompt": "3+3", "completion": "6"}]
NORMALIZED_CHATS = CHATS
NORMALIZED_PAIRS = [{"text1": "a cat", "text2": "a kitten", "score": 0.9},
                    {"text1": "a cat", "text2": "a truck", "score": 0.05},
                    {"text1": "same", "text2": "same", "score": 1.0}]

CASES = [
    # (records, shape, normalized, formats)
    (TEXT, "prompt_completion", NORMALIZED_TEXT, ["jsonl", "json", "csv", "parquet"]),
    (NUMBERS, "regression", NORMALIZED_NUMBERS, ["jsonl", "json", "csv", "parquet"]),
    (CLASSES, "classification", NORMALIZED_CLASSES, ["jsonl", "json", "parquet"]),
    (IO, "input_output", NORMALIZED_IO, ["jsonl", "json", "csv", "parquet"]),
    (CHATS, "chat", NORMALIZED_CHATS, ["jsonl", "json", "parquet"]),
    (PAIRS, "pairs", NORMALIZED_PAIRS, ["jsonl", "json", "csv", "parquet"]),
]


@pytest.mark.parametrize(
    ("records", "shape", "normalized", "file_format"),
    [pytest.param(r, s, n, f, id=f"{s}-{f}") for r, s, n, fs in CASES for f in fs],
)
def test_each_shape_in_each_format(write_records, records, shape, normalized, file_format):
    path = write_records(records, file_format)
    info = inspect_dataset(path)
    assert info.file_format == file_format
    assert info.shape == shape
    assert info.num_records == len(records)
    assert load_examples(path) == normalized


def test_classification_info_lists_sorted_labels(write_records):
    info = inspect_dataset(write_records(CLASSES, "jsonl"))
    assert info == DatasetInfo(file_format="jsonl", shape="classification", num_records=3,
                               labels=["negative", "positive"], multi_label=False)


def test_multi_label_classification(write_records):
    records = [{"prompt": "a", "completion": {"x": 1, "y": 1, "z": 0}},
               {"prompt": "b", "completion": {"x": 0, "y": 0, "z": 1}}]
    path = write_records(records, "jsonl")
    info = inspect_dataset(path)
    assert info.multi_label is True
    assert info.labels == ["x", "y", "z"]
    assert load_examples(path) == [{"text": "a", "labels": ["x", "y"]},
                                   {"text": "b", "labels": ["z"]}]


def test_classification_keys_may_differ_and_values_may_be_bools_or_floats(write_records):
    records = [{"prompt": "a", "completion": {"x": True, "y": False}},
               {"prompt": "b", "completion": {"w": 1.0}},
               {"prompt": "c", "completion": {"x": 0.0, "y": 1}}]
    path = write_records(records, "jsonl")
    info = inspect_dataset(path)
    assert info.labels == ["w", "x", "y"]
    assert load_examples(path) == [{"text": "a", "labels": ["x"]},
                                   {"text": "b", "labels": ["w"]},
                                   {"text": "c", "labels": ["y"]}]


def test_parquet_struct_with_varying_label_keys(write_records):
    # pyarrow fills keys a row lacks with nulls; those are absent labels, not errors.
    records = [{"prompt": "a", "completion": {"x": 1}}, {"prompt": "b", "completion": {"y": 1}}]
    path = write_records(records, "parquet")
    assert inspect_dataset(path).labels == ["x", "y"]
    assert load_examples(path) == [{"text": "a", "labels": ["x"]},
                                   {"text": "b", "labels": ["y"]}]


def test_parquet_map_column_is_classification(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "prompt": ["good", "bad"],
        "completion": pa.array([[("pos", 1), ("neg", 0)], [("neg", 1)]],
                               type=pa.map_(pa.string(), pa.int8())),
    })
    path = tmp_path / "labels.parquet"
    pq.write_table(table, path)
    info = inspect_dataset(path)
    assert (info.shape, info.labels) == ("classification", ["neg", "pos"])
    assert load_examples(path) == [{"text": "good", "labels": ["pos"]},
                                   {"text": "bad", "labels": ["neg"]}]


def test_parquet_is_streamed_in_batches(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 5000  # more than one read batch, several row groups
    table = pa.table({"text1": [f"a{i}" for i in range(n)], "text2": ["b"] * n,
                      "score": [i / n for i in range(n)]})
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path, row_group_size=700)
    assert inspect_dataset(path).num_records == n
    examples = load_examples(path)
    assert examples[4321] == {"text1": "a4321", "text2": "b", "score": 4321 / n}


def test_input_output_labels_when_outputs_repeat(write_records):
    records = [{"input": f"text {i}", "expected_output": ["spam", "ham"][i % 2]}
               for i in range(10)]
    assert inspect_dataset(write_records(records, "csv")).labels == ["ham", "spam"]


def test_input_output_without_labels_when_outputs_are_distinct(write_records):
    records = [{"input": f"q{i}", "expected_output": f"answer {i}"} for i in range(10)]
    assert inspect_dataset(write_records(records, "jsonl")).labels is None


def test_input_output_labels_need_fewer_distinct_values_than_half_the_records(write_records):
    # 4 records, 2 distinct values: not fewer than 4/2, so not plausibly labels.
    records = [{"input": str(i), "expected_output": "ab"[i % 2]} for i in range(4)]
    assert inspect_dataset(write_records(records, "jsonl")).labels is None
    records = [{"input": str(i), "expected_output": "ab"[i % 2]} for i in range(5)]
    assert inspect_dataset(write_records(records, "jsonl")).labels == ["a", "b"]


def test_input_output_with_more_than_50_distinct_outputs_has_no_labels(write_records):
    records = [{"input": str(i), "expected_output": f"l{i % 51}"} for i in range(51 * 4)]
    assert inspect_dataset(write_records(records, "jsonl")).labels is None
    records = [{"input": str(i), "expected_output": f"l{i % 50}"} for i in range(50 * 4)]
    assert len(inspect_dataset(write_records(records, "jsonl")).labels) == 50


def test_csv_numeric_completions_are_regression_only_when_all_are(write_file):
    path = write_file("r.csv", "prompt,completion\na,1\nb, 2.5 \nc,-3e2\n")
    assert inspect_dataset(path).shape == "regression"
    assert load_examples(path) == [{"text": "a", "value": 1.0}, {"text": "b", "value": 2.5},
                                   {"text": "c", "value": -300.0}]
    path = write_file("t.csv", "prompt,completion\na,1\nb,two\nc,3\n")
    assert inspect_dataset(path).shape == "prompt_completion"
    assert load_examples(path)[0] == {"prompt": "a", "completion": "1"}


def test_csv_header_is_matched_loosely_and_extra_columns_are_ignored(write_file):
    path = write_file("d.csv", "\ufeff Input ,EXPECTED_OUTPUT,id\nhello,world,1\n")
    assert inspect_dataset(path).shape == "input_output"
    assert load_examples(path) == [{"prompt": "hello", "completion": "world"}]


def test_csv_quoted_fields_may_span_lines_and_line_numbers_follow(write_file):
    path = write_file("d.csv", 'prompt,completion\n"a\nb","c, d"\nx,\n')
    with pytest.raises(DatasetValidationError) as caught:
        load_examples(path)
    assert [(i.location, i.message) for i in caught.value.issues] == [
        ("line 4", "'completion' must not be empty")]
    path = write_file("ok.csv", 'prompt,completion\r\n"a\r\nb","c, d"\r\n')
    assert load_examples(path) == [{"prompt": "a\r\nb", "completion": "c, d"}]


def test_csv_skips_blank_and_all_empty_rows(write_file):
    path = write_file("d.csv", "text1,text2,score\n\na,b,0.5\n,,\n\n")
    assert inspect_dataset(path).num_records == 1


def test_jsonl_skips_blank_lines_and_ignores_extra_keys(write_file):
    content = ('\n{"prompt": "a", "completion": "b", "id": 7, "meta": {"x": 1}}\n   \n'
               '{"prompt": "c", "completion": "d"}\r\n\n')
    path = write_file("d.jsonl", content)
    assert inspect_dataset(path).num_records == 2
    assert load_examples(path) == [{"prompt": "a", "completion": "b"},
                                   {"prompt": "c", "completion": "d"}]


def test_chat_messages_keep_only_role_and_content(write_file):
    record = {"messages": [{"role": "user", "content": "hi", "name": "bob"},
                           {"role": "assistant", "content": "", "weight": 1}]}
    path = write_file("c.jsonl", json.dumps(record))
    assert load_examples(path) == [{"messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": ""}]}]


def test_byte_order_mark_is_ignored(write_file):
    line = '{"prompt": "a", "completion": "b"}\n'
    assert inspect_dataset(write_file("d.jsonl", "\ufeff" + line)).num_records == 1
    assert inspect_dataset(write_file("d.json", "\ufeff[" + line + "]")).num_records == 1


@pytest.mark.parametrize(("content", "expected"), [
    (b'[{"prompt": "a", "completion": "b"}]', "json"),
    (b'  \n [{"prompt": "a", "completion": "b"}]', "json"),
    (b'{"prompt": "a", "completion": "b"}\n', "jsonl"),
    (b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}\n', "jsonl"),
    (b"prompt,completion\na,b\n", "csv"),
])
def test_unknown_extension_is_sniffed(write_file, content, expected):
    path = write_file("upload.bin", content)
    assert detect_format(path) == expected
    assert inspect_dataset(path).file_format == expected
    assert load_examples(path) == [{"prompt": "a", "completion": "b"}]


def test_unknown_extension_parquet_is_sniffed_by_magic(write_records):
    path = write_records(TEXT, "parquet", name="upload")
    assert detect_format(path) == "parquet"
    assert inspect_dataset(path).shape == "prompt_completion"


def test_filename_decides_over_the_stored_name(write_file):
    # Uploads are stored under generated names; the user's file name gives the format.
    path = write_file("ds-123.jsonl", "prompt,completion\n[a],b\n")
    assert detect_format(path, filename="mine.CSV") == "csv"
    assert load_examples(path, filename="mine.CSV") == [{"prompt": "[a]", "completion": "b"}]


def test_extension_decides_over_content(write_file):
    path = write_file("d.csv", '{"prompt": "a", "completion": "b"}\n')
    assert detect_format(path) == "csv"


def test_json_named_file_holding_jsonl_is_read_as_jsonl(write_file):
    path = write_file("d.json", '{"prompt": "a", "completion": "b"}\n'
                                '{"prompt": "c", "completion": "d"}\n')
    info = inspect_dataset(path)
    assert (info.file_format, info.num_records) == ("jsonl", 2)


def test_large_jsonl_is_checked_record_by_record(write_file):
    lines = "".join(json.dumps({"text1": f"a{i}", "text2": "b", "score": 0.5}) + "\n"
                    for i in range(20000))
    path = write_file("big.jsonl", lines)
    assert inspect_dataset(path).num_records == 20000


def test_csv_accepts_long_values_and_literal_quotes(write_file):
    long_text = "word " * 60000  # beyond the csv module's default 128 KiB limit
    path = write_file("d.csv", f'prompt,completion\n"{long_text}",say "hi" now\n')
    assert load_examples(path) == [{"prompt": long_text, "completion": 'say "hi" now'}]


def test_importing_the_package_pulls_in_neither_torch_nor_pyarrow():
    # The API server imports this package; heavy libraries stay off its start-up path.
    import subprocess
    import sys

    code = ("import sys, tuneyard.data; "
            "print(sorted(m for m in ('torch', 'pyarrow', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
