"""Read a long-format data file (CSV, JSONL or Parquet, by extension) row by row.

Shared by every loader of user data (routing outcomes, accuracy-vs-budget ladders), so that
all of them name the file, the row and the column the same way when something is wrong.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import DataError


def _need(path: Path, required: Sequence[str], have: Sequence[str]) -> None:
    missing = [c for c in required if c not in have]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(have) or 'none'}")


def read_records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yield (row number as a user counts it, record); CSV row 1 is the header."""
    ext = path.suffix.lower()
    try:
        if ext == ".csv":
            csv.field_size_limit(2**31 - 1)  # prompts can be long
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                _need(path, required, list(reader.fieldnames or []))
                yield from enumerate(reader, start=2)
        elif ext in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8") as fh:
                for i, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as exc:
                        raise DataError(f"{path}: row {i}: invalid JSON: {exc}") from None
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}: row {i}: expected a JSON object")
                    yield i, obj
        elif ext in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            _need(path, required, table.column_names)
            yield from enumerate(table.to_pylist(), start=1)
        else:
            raise DataError(f"{path}: unknown format {ext or '(no extension)'}; use .csv, .jsonl or .parquet")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
