"""Write the long outcomes format, so a shoot-out's results feed ``eval`` and ``calibrate`` with no glue.

One row per prompt x model (x budget). ``write_outcomes`` writes a whole file (CSV, JSONL or
Parquet by extension); ``append=True`` adds rows to a JSONL or CSV file, the way a run that
records each finished call as it lands (and resumes after a crash) needs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .format import OPTIONAL, REQUIRED

COLUMNS: tuple[str, ...] = (*REQUIRED, *OPTIONAL)


@dataclass(frozen=True)
class OutcomeRow:
    """One call's outcome; ``None`` leaves a column empty. ``extra`` columns are written after the known ones."""

    prompt_id: str
    prompt: str
    model: str
    score: float
    budget: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    task: str | None = None
    split: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        extra = out.pop("extra")
        return {**out, **{k: v for k, v in extra.items() if k not in out}}


def _record(row: OutcomeRow | Mapping[str, Any], n: int) -> dict[str, Any]:
    rec = row.record() if isinstance(row, OutcomeRow) else dict(row)
    missing = [c for c in REQUIRED if rec.get(c) is None or rec.get(c) == ""]
    if missing:
        raise DataError(f"outcome row {n}: missing {', '.join(missing)}")
    score = rec["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score) or not 0 <= score <= 1:
        raise DataError(f"outcome row {n}: score must be a number in 0..1, got {score!r}")
    if rec.get("split") not in (None, "", "train", "test"):
        raise DataError(f"outcome row {n}: split must be train or test, got {rec['split']!r}")
    return rec


def _columns(records: list[dict[str, Any]]) -> list[str]:
    extra = sorted({k for r in records for k in r} - set(COLUMNS))
    return [*COLUMNS, *extra]


def write_outcomes(rows: Iterable[OutcomeRow | Mapping[str, Any]], path: str | Path, *, append: bool = False) -> int:
    """Write rows to ``path`` (.jsonl/.ndjson, .csv or .parquet); returns how many were written.

    Rows are validated first (required columns present, score in 0..1), so a bad row writes nothing.
    """
    path = Path(path)
    records = [_record(r, i) for i, r in enumerate(rows, start=1)]
    ext = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if ext in (".jsonl", ".ndjson"):
            with path.open("a" if append else "w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps({k: v for k, v in rec.items() if v is not None}, ensure_ascii=False) + "\n")
        elif ext == ".csv":
            _write_csv(path, records, append)
        elif ext in (".parquet", ".pq"):
            if append:
                raise DataError(f"{path}: cannot append to Parquet; write JSONL or CSV while running")
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols = _columns(records)
            pq.write_table(pa.table({c: [r.get(c) for r in records] for c in cols}), path)
        else:
            raise DataError(f"{path}: unknown format {ext or '(no extension)'}; use .csv, .jsonl or .parquet")
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return len(records)


def _write_csv(path: Path, records: list[dict[str, Any]], append: bool) -> None:
    existing: list[str] | None = None
    if append and path.exists() and path.stat().st_size > 0:
        with path.open(newline="", encoding="utf-8") as fh:
            existing = next(csv.reader(fh), None)
    cols = existing or _columns(records)
    unknown = sorted({k for r in records for k, v in r.items() if v is not None} - set(cols))
    if unknown:
        raise DataError(f"{path}: cannot append column(s) {', '.join(unknown)} missing from the file's header")
    with path.open("a" if existing else "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        if existing is None:
            writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
