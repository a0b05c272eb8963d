"""Accuracy-vs-budget data from files: the generic budget format, the outcomes format, or a tts folder.

The generic format has one row per (item, model, setting): ``item_id, model, setting,
tokens_used, score`` (optional ``budget_tokens, benchmark, task, prompt``; docs/budgets.md).
The outcomes format a shoot-out writes is read as the same thing under its own names:
``prompt_id`` is the item, ``budget`` the setting, ``output_tokens`` the tokens used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..tabular import read_records
from .ladder import Ladder, LadderBuilder
from .tts_data import is_tts_folder, load_tts_folder

REQUIRED_COLUMNS = ("item_id", "model", "setting", "tokens_used", "score")
OPTIONAL_COLUMNS = ("budget_tokens", "benchmark", "task", "prompt")
DEFAULT_BENCHMARK = "default"
# canonical column -> its name in the outcomes format
OUTCOMES_ALIASES = {"item_id": "prompt_id", "setting": "budget", "tokens_used": "output_tokens"}
_NO_THINK = {"no-think", "no_think", "nothink", "off", "none", "0"}
_TOKENS = re.compile(r"^(\d+(?:\.\d+)?)\s*([km]?)(?:tok(?:ens)?)?$", re.IGNORECASE)


def budget_tokens_of(label: str) -> float | None:
    """The numeric thinking budget a setting label names (``no-think`` 0, ``1k`` 1024, ``512``), else None."""
    text = label.strip().lower()
    if text in _NO_THINK:
        return 0.0
    m = _TOKENS.match(text)
    if not m:
        return None
    return float(m[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[m[2].lower()]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _field(where: str, rec: Mapping[str, Any], col: str, required: bool = True) -> str | None:
    value = rec.get(col)
    if _empty(value):
        if required:
            raise DataError(f"{where}, column {col}: empty")
        return None
    return str(value).strip()


def _num(where: str, rec: Mapping[str, Any], col: str, lo: float, hi: float, required: bool = True) -> float | None:
    text = _field(where, rec, col, required)
    if text is None:
        return None
    try:
        x = float(text)
    except ValueError:
        raise DataError(f"{where}, column {col}: expected a number, got {text!r}") from None
    if not lo <= x <= hi or math.isnan(x):
        bound = f"{lo:g}..{hi:g}" if hi != math.inf else f">= {lo:g}"
        raise DataError(f"{where}, column {col}: {x:g} is not {bound}")
    return x


def _canonical(rec: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The record under the generic format's names; True when it came in the outcomes format."""
    if "item_id" in rec or "prompt_id" not in rec:
        return rec, False
    out = dict(rec)
    for col, alias in OUTCOMES_ALIASES.items():
        out[col] = rec.get(alias)
    return out, True


def load_budget_file(path: str | Path) -> list[Ladder]:
    """Read the generic budget format or the outcomes format (a shoot-out's output); see docs/budgets.md."""
    path = Path(path)
    builder = LadderBuilder()
    for row, rec in read_records(path, ()):
        rec, outcomes = _canonical(rec)
        where = f"{path}: row {row}"
        absent = [OUTCOMES_ALIASES.get(c, c) if outcomes else c for c in REQUIRED_COLUMNS if rec.get(c) is None]
        if absent:
            raise DataError(f"{where}: missing column(s) {', '.join(absent)} (needed for budget calibration)")
        score = _num(where, rec, "score", 0.0, 1.0)
        tokens = _num(where, rec, "tokens_used", 0.0, math.inf)
        assert score is not None and tokens is not None
        setting = str(_field(where, rec, "setting"))
        budget = _num(where, rec, "budget_tokens", 0.0, math.inf, required=False)
        builder.add(
            model=str(_field(where, rec, "model")),
            benchmark=_field(where, rec, "benchmark", required=False) or DEFAULT_BENCHMARK,
            task=_field(where, rec, "task", required=False),
            setting=setting,
            item_id=str(_field(where, rec, "item_id")),
            score=score,
            tokens=tokens,
            budget_tokens=budget if budget is not None or not outcomes else budget_tokens_of(setting),
            text=_field(where, rec, "prompt", required=False),
            where=where,
        )
    if not builder.cells:
        raise DataError(f"{path}: no rows")
    return builder.build()


def load_budget_data(path: str | Path) -> list[Ladder]:
    """A tts_knowledge_budgets-style folder (auto-detected) or a generic / outcomes CSV, JSONL or Parquet file."""
    path = Path(path)
    if path.is_dir():
        if is_tts_folder(path):
            return load_tts_folder(path)
        raise DataError(f"{path}: a folder, but not a tts_knowledge_budgets folder (no outputs/<model>/*.jsonl)")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return load_budget_file(path)
