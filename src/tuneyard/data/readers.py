"""Reading dataset files: which format a file is in, and its records one at a time.

Formats are JSONL, a JSON array, CSV and Parquet. Every reader yields ``(location, record,
problem)``: a dict record, or a problem with that one line or record (invalid UTF-8, malformed
JSON) that does not stop the others from being checked. Problems with the file as a whole (a
CSV without the expected header, a broken Parquet file) raise DatasetValidationError at once.
JSONL, CSV and Parquet are streamed; only a JSON array is loaded whole, as JSON must be.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import FILE, fail

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")

Item = tuple[str, dict[str, Any] | None, str | None]
"""(location, record or None, problem or None): exactly one of record and problem is set."""

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
               ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 4096

CSV_FIELD_LIMIT = 64 * 1024 * 1024
"""Longest CSV value accepted, in characters."""

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest JSONL or CSV line accepted, in bytes: one line is read into memory whole."""

MAX_JSON_ARRAY_BYTES = 64 * 1024 * 1024
"""Largest JSON-array file accepted, in bytes: a JSON array is parsed whole (JSONL is not)."""

MAX_JSON_ARRAY_RECORDS = 1_000_000
"""Most records a JSON-array file may hold."""

CSV_COLUMN_SETS = (("prompt", "completion"), ("input", "expected_output"),
                   ("text1", "text2", "score"), ("prompt", "chosen", "rejected"))
"""A CSV header must hold one of these column sets; the first one present decides."""


def detect_format(path: Path, *, filename: str | None = None) -> str:
    """The file format, from the extension of ``filename`` (default: the path's name) or content.

    Uploads are often stored under a generated name, so ``filename`` is the name the user gave.
    """
    suffix = Path(filename or path.name).suffix.lower()
    file_format = _EXTENSIONS.get(suffix)
    if file_format == "json":
        # Many JSONL files are named .json; one whose first line is a whole object is JSONL.
        return "jsonl" if _first_line_is_object(path) else "json"
    return file_format or _sniff(path)


def _sniff(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    start = head.removeprefix(_BOM).lstrip()[:1]
    return {b"[": "json", b"{": "jsonl"}.get(start, "csv")


TOO_DEEP = "not valid JSON: nested too deeply"


def _first_line_is_object(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES).removeprefix(_BOM).lstrip()
        if not head.startswith(b"{"):
            return False
        f.seek(0)
        for _, raw in _lines(f):
            line = raw.removeprefix(_BOM).strip()
            if line:
                try:
                    return isinstance(json.loads(line), dict)
                except (ValueError, RecursionError):  # also UnicodeDecodeError
                    return False
    return False


def iter_records(path: Path, *, file_format: str) -> Iterator[Item]:
    """Every record of the file in order, with its location, or the problem found there."""
    readers = {"jsonl": _iter_jsonl, "json": _iter_json, "csv": _iter_csv,
               "parquet": _iter_parquet}
    if file_format not in readers:
        raise ValueError(f"unknown file format {file_format!r}, expected one of {FILE_FORMATS}")
    return readers[file_format](path)


def kind(value: Any) -> str:
    """A JSON-flavoured type name for messages: string, number, bool, list, object, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    names = {str: "string", list: "list", dict: "object"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def _utf8_problem(raw: bytes, error: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"


def _lines(f) -> Iterator[tuple[int, bytes]]:
    """(number, line) for each line of a binary file, never reading more than
    MAX_LINE_BYTES of one line: a longer line stops the reading (4xx naming it)."""
    number = 0
    while raw := f.readline(MAX_LINE_BYTES + 2):  # room for the line's own \r\n
        number += 1
        if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            raise fail(f"line {number}", f"longer than {MAX_LINE_BYTES} bytes (the limit for "
                       "one line); split the record or use another format")
        yield number, raw


def _iter_jsonl(path: Path) -> Iterator[Item]:
    with path.open("rb") as f:
        for number, raw in _lines(f):
            location = f"line {number}"
            if number == 1:
                raw = raw.removeprefix(_BOM)
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                yield location, None, _utf8_problem(raw, error)
                continue
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield location, None, f"not valid JSON: {error.msg} (column {error.colno})"
                continue
            except RecursionError:
                yield location, None, TOO_DEEP
                continue
            if isinstance(value, dict):
                yield location, value, None
            else:
                yield location, None, f"expected a JSON object, got {kind(value)}"


def _iter_json(path: Path) -> Iterator[Item]:
    size = path.stat().st_size
    if size > MAX_JSON_ARRAY_BYTES:
        raise fail(FILE, f"a JSON-array dataset is at most {MAX_JSON_ARRAY_BYTES} bytes (this "
                   f"one is {size}); upload larger datasets as JSONL, one record per line")
    data = path.read_bytes().removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise fail(f"line {line}", f"not valid UTF-8 (byte 0x{data[error.start]:02x} at "
                                   f"column {column})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(f"line {error.lineno}",
                   f"not valid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise fail(FILE, TOO_DEEP) from None
    if not isinstance(value, list):
        raise fail(FILE, f"a JSON dataset must be an array of records, got {kind(value)}")
    if len(value) > MAX_JSON_ARRAY_RECORDS:
        raise fail(FILE, f"a JSON-array dataset holds at most {MAX_JSON_ARRAY_RECORDS} records "
                   f"(this one has {len(value)}); upload larger datasets as JSONL")
    for number, item in enumerate(value, 1):
        if isinstance(item, dict):
            yield f"record {number}", item, None
        else:
            yield f"record {number}", None, f"expected a JSON object, got {kind(item)}"


def _iter_csv(path: Path) -> Iterator[Item]:
    bad_lines: list[tuple[int, str]] = []  # lines that were not UTF-8, filled while reading

    def lines(f) -> Iterator[str]:
        for number, raw in _lines(f):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad_lines.append((number, _utf8_problem(raw, error)))
                yield raw.decode("utf-8", errors="replace")

    # The default limit (128 KiB per value) would refuse long documents; this only ever raises
    # the process-wide limit.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with path.open("rb") as f:
        # Lines keep their endings, as csv needs for quoted values that span lines. Strict
        # parsing reports a quote left open instead of silently swallowing the rest of the file.
        reader = csv.reader(lines(f), strict=True)
        columns: list[str] | None = None
        last_line = 0
        while True:
            first_line = last_line + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                # The parser cannot resynchronize reliably; later lines go unchecked.
                yield f"line {first_line}", None, f"malformed CSV: {error}"
                return
            last_line = reader.line_num
            broken = bad_lines[:]  # the reader reads no further than the row it returns
            bad_lines.clear()
            if broken and columns is None:
                raise fail(f"line {broken[0][0]}", f"CSV header is {broken[0][1]}")
            if broken:
                for number, problem in broken:
                    yield f"line {number}", None, problem
                continue
            if not any(cell.strip() for cell in row):
                continue  # blank lines and the all-empty rows spreadsheets append
            if columns is None:
                columns = _csv_columns(row, line=first_line)
                continue
            location = f"line {first_line}"
            if len(row) != len(columns):
                yield location, None, (f"expected {len(columns)} fields as in the header, "
                                       f"got {len(row)}")
                continue
            yield location, dict(zip(columns, row, strict=True)), None


def _csv_columns(header: list[str], *, line: int) -> list[str]:
    # Headers written by hand or by spreadsheets vary in case and spacing; names are matched
    # loosely and records use the canonical lower-case names.
    columns = [name.strip().lower() for name in header]
    if not any(all(c in columns for c in wanted) for wanted in CSV_COLUMN_SETS):
        expected = " or ".join(",".join(wanted) for wanted in CSV_COLUMN_SETS)
        raise fail(f"line {line}",
                   f"CSV header must contain {expected} (found: {','.join(header)})")
    return columns


def _iter_parquet(path: Path) -> Iterator[Item]:
    import pyarrow as pa  # imported here: pyarrow is heavy and only Parquet needs it
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        maps = {field.name for field in parquet.schema_arrow if pa.types.is_map(field.type)}
        batches = parquet.iter_batches(batch_size=1024)
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield f"row {number}", _parquet_record(row, maps=maps), None
    except (pa.ArrowException, OSError) as error:
        raise fail(FILE, f"not a readable Parquet file: {error}") from None


def _parquet_record(row: dict[str, Any], *, maps: set[str]) -> dict[str, Any]:
    record = {}
    for key, value in row.items():
        if key in maps and isinstance(value, list):
            value = dict(value)  # a map column comes back as (key, value) pairs
        if isinstance(value, dict):
            # A struct column has every key seen in any row; the ones a row lacked are null.
            value = {k: v for k, v in value.items() if v is not None}
        record[key] = value
    return record
