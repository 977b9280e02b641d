"""Invalid datasets: every problem reported with its line, row or record, and the message."""

from __future__ import annotations

import json
import pickle

import pytest

from tuneyard.data import (
    DatasetIssue,
    DatasetValidationError,
    inspect_dataset,
    load_examples,
)


def issues_of(path, **kwargs) -> list[tuple[str, str]]:
    with pytest.raises(DatasetValidationError) as caught:
        inspect_dataset(path, **kwargs)
    # load_examples checks exactly as much as inspect_dataset does.
    with pytest.raises(DatasetValidationError) as again:
        load_examples(path, **kwargs)
    assert again.value.issues == caught.value.issues
    return [(issue.location, issue.message) for issue in caught.value.issues]


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


PC = {"prompt": "p", "completion": "c"}


def test_malformed_json_line_is_numbered(write_file):
    path = write_file("d.jsonl", jsonl(PC, "", '{"prompt": "p", "completion": }', PC))
    [(location, message)] = issues_of(path)
    assert location == "line 3"
    assert message.startswith("not valid JSON: Expecting value")


def test_non_object_line(write_file):
    path = write_file("d.jsonl", jsonl(PC, "[1, 2]", '"text"'))
    assert issues_of(path) == [("line 2", "expected a JSON object, got list"),
                               ("line 3", "expected a JSON object, got string")]


def test_wrong_completion_type_uses_the_documented_message(write_file):
    path = write_file("d.jsonl", jsonl(PC, {"prompt": "p", "completion": [1]}))
    assert issues_of(path) == [("line 2", "'completion' must be a string, a number or an object "
                                          "of label -> 0/1, got list")]


def test_shape_is_taken_from_the_next_record_when_the_first_fits_none(write_file):
    path = write_file("d.jsonl", jsonl({"prompt": "p", "completion": None}, PC,
                                       {"prompt": "p", "completion": 2}))
    issues = issues_of(path)
    assert [location for location, _ in issues] == ["line 1", "line 3"]
    assert issues[0][1].endswith("got null")
    assert "is a number but the dataset is prompt_completion" in issues[1][1]


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": 3, "completion": "c"}, "'prompt' must be a string, got number"),
    ({"prompt": "p", "completion": "  "}, "'completion' must not be empty"),
    ({"input": "i", "expected_output": 4}, "'expected_output' must be a string, got number"),
    ({"text1": "a", "text2": None, "score": 0.5}, "'text2' must be a string, got null"),
    ({"text1": "a", "text2": "b", "score": 1.5},
     "'score' must be a number between 0 and 1, got 1.5"),
    ({"text1": "a", "text2": "b", "score": -0.1},
     "'score' must be a number between 0 and 1, got -0.1"),
    ({"text1": "a", "text2": "b", "score": "0.5"},
     "'score' must be a number between 0 and 1, got '0.5'"),
    ({"text1": "a", "text2": "b", "score": True},
     "'score' must be a number between 0 and 1, got True"),
    ({"prompt": "p", "completion": {}}, "'completion' has no labels"),
    ({"prompt": "p", "completion": {"a": 0, "b": 0}}, "'completion' has no label set to 1"),
    ({"prompt": "p", "completion": {"a": 2}}, "label 'a' must be 0 or 1, got 2"),
    ({"prompt": "p", "completion": {"a": "1"}}, "label 'a' must be 0 or 1, got '1'"),
    ({"prompt": "p", "completion": {"a": 0.5}}, "label 'a' must be 0 or 1, got 0.5"),
    ({"messages": []}, "'messages' must be a non-empty list of messages, got an empty list"),
    ({"messages": "hi"}, "'messages' must be a non-empty list of messages, got string"),
    ({"messages": [{"role": "user", "content": "hi"}]},
     "'messages' has no assistant message to learn from"),
    ({"messages": ["hi"]}, "messages[0] must be an object with role and content, got string"),
])
def test_wrong_field_types_and_values(write_file, record, message):
    path = write_file("d.jsonl", jsonl(record))
    assert issues_of(path) == [("line 1", message)]


def test_bad_roles_and_content_are_each_reported(write_file):
    record = {"messages": [{"role": "bot", "content": "hi"},
                           {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
                           {"content": "no role"}]}
    path = write_file("d.jsonl", jsonl(record))
    assert issues_of(path) == [
        ("line 1", "messages[0].role must be one of system, user, assistant, got 'bot'"),
        ("line 1", "messages[1].content must be a string, got list"),
        ("line 1", "messages[2].role must be one of system, user, assistant, got None"),
    ]


def test_regression_values_must_be_finite(write_file):
    path = write_file("d.jsonl", '{"prompt": "a", "completion": 1}\n'
                                 '{"prompt": "b", "completion": NaN}\n'
                                 '{"prompt": "c", "completion": 1e999}\n')
    assert issues_of(path) == [("line 2", "'completion' must be a finite number, got nan"),
                               ("line 3", "'completion' must be a finite number, got inf")]


def test_mixed_shapes_are_reported_against_the_first_record(write_file):
    path = write_file("d.jsonl", jsonl(
        {"prompt": "a", "completion": {"x": 1}},
        {"prompt": "b", "completion": "text"},
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"prompt": "c"},
        {"foo": 1},
    ))
    issues = issues_of(path)
    assert [location for location, _ in issues] == ["line 2", "line 3", "line 4", "line 5"]
    assert issues[0][1].startswith("'completion' is a string but the dataset is classification")
    assert issues[1][1] == ("record has the keys of a chat dataset but this dataset is "
                            "classification (decided by its first record)")
    assert issues[2][1].startswith("missing 'completion' (the dataset is classification")
    assert issues[3][1].startswith("missing 'prompt', 'completion'")


def test_record_with_no_known_keys_names_the_key_sets(write_file):
    path = write_file("d.jsonl", jsonl({"question": "q", "answer": "a"}))
    assert issues_of(path) == [("line 1", "a record needs the keys prompt,completion or "
                                          "input,expected_output or messages or "
                                          "text1,text2,score or prompt,chosen,rejected "
                                          "(found: answer,question)")]


def test_invalid_utf8_line_is_numbered(write_file):
    content = (jsonl(PC, PC).encode() + b'{"prompt": "caf\xe9", "completion": "x"}\n'
               + jsonl(PC).encode())
    assert issues_of(write_file("d.jsonl", content)) == [
        ("line 3", "not valid UTF-8 (byte 0xe9 at column 16)")]


def test_invalid_utf8_in_csv_is_numbered(write_file):
    content = b"prompt,completion\na,b\n\"multi\nline\",ok\nc,\xff\xfe\nd,e\n"
    assert issues_of(write_file("d.csv", content)) == [
        ("line 5", "not valid UTF-8 (byte 0xff at column 3)")]


def test_invalid_utf8_in_json_array_is_numbered(write_file):
    content = b'[\n {"prompt": "a", "completion": "b"},\n {"prompt": "\xc3(", "completion": "b"}\n]'
    assert issues_of(write_file("d.json", content)) == [
        ("line 3", "not valid UTF-8 (byte 0xc3 at column 14)")]


def test_invalid_utf8_in_csv_header(write_file):
    assert issues_of(write_file("d.csv", b"prompt,compl\xe9tion\na,b\n")) == [
        ("line 1", "CSV header is not valid UTF-8 (byte 0xe9 at column 13)")]


def test_empty_files_have_no_records(write_file, write_records):
    for name, content in [("d.jsonl", ""), ("d.jsonl", "\n\n  \n"), ("d.json", "[]"),
                          ("d.csv", "prompt,completion\n"), ("d.csv", "prompt,completion\n,\n")]:
        path = write_file(name, content)
        assert issues_of(path) == [("file", "dataset has no records")], (name, content)
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_file("e.parquet", b"")
    pq.write_table(pa.table({"prompt": pa.array([], pa.string()),
                             "completion": pa.array([], pa.string())}), path)
    assert issues_of(path) == [("file", "dataset has no records")]
    with pytest.raises(DatasetValidationError, match="^invalid dataset: dataset has no records$"):
        inspect_dataset(write_file("d.csv", ""))


def test_csv_header_must_name_a_known_column_set(write_file):
    path = write_file("d.csv", "question,answer\nq,a\n")
    assert issues_of(path) == [("line 1", "CSV header must contain prompt,completion or "
                                          "input,expected_output or text1,text2,score or "
                                          "prompt,chosen,rejected (found: question,answer)")]
    path = write_file("d.csv", "text1,text2\na,b\n")
    assert issues_of(path)[0][1].startswith("CSV header must contain prompt,completion or ")


def test_csv_row_with_wrong_field_count(write_file):
    path = write_file("d.csv", "prompt,completion\na,b\nc\nd,e,f\ng,h\n")
    assert issues_of(path) == [("line 3", "expected 2 fields as in the header, got 1"),
                               ("line 4", "expected 2 fields as in the header, got 3")]


def test_csv_score_must_parse_and_be_in_range(write_file):
    path = write_file("d.csv", "text1,text2,score\na,b,0.5\nc,d,high\ne,f,2\ng,h,nan\n")
    assert issues_of(path) == [
        ("line 3", "'score' must be a number between 0 and 1, got 'high'"),
        ("line 4", "'score' must be a number between 0 and 1, got 2.0"),
        ("line 5", "'score' must be a number between 0 and 1, got 'nan'"),
    ]


def test_json_array_problems(write_file):
    path = write_file("d.json", '[{"prompt": "a", "completion": "b"}, 3, {"prompt": "c"}]')
    issues = issues_of(path)
    assert issues[0] == ("record 2", "expected a JSON object, got number")
    assert issues[1][0] == "record 3" and issues[1][1].startswith("missing 'completion'")
    path = write_file("d.json", '[{"prompt": "a",\n  "completion": "b"},\n  {"prompt" "c"}]')
    [(location, message)] = issues_of(path)
    assert location == "line 3" and message.startswith("not valid JSON: Expecting ':'")
    path = write_file("d.json", '{\n  "data": [{"prompt": "a", "completion": "b"}]\n}')
    assert issues_of(path) == [("file", "a JSON dataset must be an array of records, got object")]
    # A one-line object in a .json file is read as JSONL, as many .json uploads are.
    path = write_file("d.json", '{"data": [{"prompt": "a", "completion": "b"}]}')
    [(location, message)] = issues_of(path)
    assert location == "line 1" and message.endswith("(found: data)")


def test_parquet_problems_are_numbered_by_row(write_records, write_file):
    records = [{"text1": "a", "text2": "b", "score": 0.5},
               {"text1": "a", "text2": "b", "score": 3.0},
               {"text1": None, "text2": "b", "score": 0.1}]
    assert issues_of(write_records(records, "parquet")) == [
        ("row 2", "'score' must be a number between 0 and 1, got 3.0"),
        ("row 3", "'text1' must be a string, got null")]
    [(location, message)] = issues_of(write_file("bad.parquet", b"PAR1 not really"))
    assert location == "file" and message.startswith("not a readable Parquet file")


def test_issues_are_capped_at_20_but_all_counted(write_file):
    path = write_file("d.jsonl", jsonl(PC, *["oops"] * 30))
    with pytest.raises(DatasetValidationError) as caught:
        inspect_dataset(path)
    error = caught.value
    assert len(error.issues) == 20
    assert error.total == 30
    assert error.issues[0].location == "line 2" and error.issues[-1].location == "line 21"
    text = str(error)
    assert text.startswith("invalid dataset: line 2: not valid JSON: ")
    assert text.count("not valid JSON") == 5
    assert "line 6: " in text and "line 7: " not in text
    assert text.endswith(" (30 problems in all)")


def test_error_message_lists_all_issues_when_few():
    error = DatasetValidationError([DatasetIssue("line 3", "bad"), DatasetIssue("row 5", "worse")])
    assert str(error) == "invalid dataset: line 3: bad; row 5: worse"
    assert isinstance(error, ValueError)


def test_error_survives_pickling():
    # Jobs run in child processes; their errors cross the process boundary pickled.
    error = DatasetValidationError([DatasetIssue("line 1", "bad")], total=7)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.issues, copy.total, str(copy)) == (error.issues, 7, str(error))


def test_csv_quote_left_open_is_reported_where_the_record_starts(write_file):
    path = write_file("d.csv", 'prompt,completion\na,b\nc,"never closed\nd,e\nf,g\n')
    assert issues_of(path) == [("line 3", "malformed CSV: unexpected end of data")]
    path = write_file("d.csv", 'prompt,completion\na,"b"c\n')
    [(location, message)] = issues_of(path)
    assert location == "line 2" and message.startswith("malformed CSV: ")


@pytest.fixture
def small_caps(monkeypatch):
    """The memory caps of the readers, made small enough to reach in a test."""
    from tuneyard.data import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(readers, "MAX_JSON_ARRAY_BYTES", 5000)
    monkeypatch.setattr(readers, "MAX_JSON_ARRAY_RECORDS", 10)
    return readers


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_a_line_past_the_cap_is_refused_by_number(write_file, small_caps, name):
    long = json.dumps({"prompt": "p" * 2000, "completion": "c"})
    path = write_file(name, jsonl(PC, PC, long, PC))
    assert issues_of(path) == [("line 3", "longer than 1000 bytes (the limit for one line); "
                                          "split the record or use another format")]


def test_a_line_at_the_cap_is_read(write_file, small_caps):
    line = json.dumps({"prompt": "p", "completion": "c"})
    record = {"prompt": "p" * (1000 - len(line) + 1), "completion": "c"}
    assert len(json.dumps(record)) == 1000
    assert inspect_dataset(write_file("d.jsonl", jsonl(record, PC))).num_records == 2


def test_a_csv_line_past_the_cap_is_refused_by_number(write_file, small_caps):
    path = write_file("d.csv", "prompt,completion\np,c\n" + "p" * 1500 + ",c\n")
    [(location, message)] = issues_of(path)
    assert location == "line 3" and message.startswith("longer than 1000 bytes")


def test_json_array_size_is_capped(write_file, small_caps):
    path = write_file("d.json", json.dumps([PC] * 11))
    [(location, message)] = issues_of(path)
    assert location == "file" and "at most 10 records" in message
    path = write_file("big.json", json.dumps([{"prompt": "p" * 900, "completion": "c"}] * 6))
    [(location, message)] = issues_of(path)
    assert location == "file" and "at most 5000 bytes" in message and "JSONL" in message
