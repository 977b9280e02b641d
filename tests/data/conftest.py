"""Fixtures writing dataset files in every accepted format, from the same records."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write raw text or bytes under a name and return the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        data = content.encode("utf-8") if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def write_records(tmp_path: Path) -> Callable[..., Path]:
    """Write records as jsonl, json, csv or parquet (pyarrow infers the column types)."""

    def write(records: list[dict], file_format: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"data.{file_format}")
        if file_format == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        elif file_format == "json":
            path.write_text(json.dumps(records, indent=2), encoding="utf-8")
        elif file_format == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
            path.write_text(buffer.getvalue(), encoding="utf-8")
        elif file_format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(records), path)
        else:
            raise AssertionError(file_format)
        return path

    return write
