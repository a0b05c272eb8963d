"""Loader for the shared ``tts_knowledge_budgets`` folder (Zhao, Hooi, Ng 2025; see its SOURCE.md).

Each file ``outputs/<model>/<model>_<benchmark>_<setting>.jsonl`` holds one graded answer per
question. Grading ``A`` is correct (score 1); ``B`` incorrect and ``C`` abstained both score 0 and
are kept apart in ``Ladder.grades``. Tokens used are thinking plus answer tokens, read from
the fields each model family reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..tabular import read_records
from .ladder import Ladder, LadderBuilder

FOLDER = "tts_knowledge_budgets"
BENCHMARKS = {"simpleqa": "SimpleQA", "frames": "FRAMES"}
GRADES = {"A": 1.0, "B": 0.0, "C": 0.0}

# Settings from low to high compute, as SOURCE.md lists them, and the numeric thinking budget
# where one exists (0 = thinking off; exdK = natural-length thinking extended K times with "Wait").
SETTINGS: dict[str, list[tuple[str, float | None]]] = {
    "claude-sonnet-4": [("no_think", 0), ("budget1024", 1024), ("budget2048", 2048), ("budget4096", 4096)],
    "gemini-2.5-flash": [("no_think", 0), ("budget256", 256), ("budget512", 512), ("budget1024", 1024), ("budget2048", 2048)],
    "gpt-5-mini": [("low_effort", None), ("medium_effort", None), ("high_effort", None)],
    "o3-mini": [("low_effort", None), ("medium_effort", None), ("high_effort", None)],
    "o4-mini": [("low_effort", None), ("medium_effort", None), ("high_effort", None)],
    "qwen3-8b": [("no_think", 0), ("exd0", None), ("exd2", None), ("exd4", None)],
    "qwen3-14b": [("no_think", 0), ("exd0", None), ("exd2", None), ("exd4", None)],
}
_FILE = re.compile(r"^(?P<model>.+?)_(?P<bench>simpleqa|frames)_(?P<setting>.+)\.jsonl$", re.IGNORECASE)
# The file prefix each model uses (claude-sonnet4, Qwen3-8B, ...) normalised to the names above.
_ALIASES = {"claude-sonnet4": "claude-sonnet-4"}


def is_tts_folder(path: Path) -> bool:
    """True for a folder laid out like tts_knowledge_budgets (``outputs/`` of per-model JSONL)."""
    return path.is_dir() and (path / "outputs").is_dir() and any((path / "outputs").glob("*/*.jsonl"))


def tokens_used(rec: Mapping[str, Any], where: str) -> float:
    """Thinking + answer tokens from whichever fields the model family reports (SOURCE.md).

    A negative count (3 rows of o4-mini FRAMES high_effort upstream) comes back negative; the
    caller skips such rows.
    """

    def get(name: str) -> float:
        value = rec.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{where}, column {name}: expected a token count, got {value!r}")
        return float(value)

    if "thinking_tokens" in rec or ("response_tokens" in rec and "reasoning_tokens" not in rec):
        return (get("thinking_tokens") if "thinking_tokens" in rec else 0.0) + get("response_tokens")  # Qwen3
    if "reasoning_tokens" in rec and "response_tokens" in rec:
        return get("reasoning_tokens") + get("response_tokens")  # Gemini
    if "completion_tokens" in rec:
        return get("completion_tokens")  # Claude, o3-mini, o4-mini, gpt-5-mini (includes reasoning)
    raise DataError(f"{where}: no token count field (completion_tokens, reasoning_tokens, thinking_tokens)")


def _model_name(prefix: str) -> str:
    name = prefix.lower()
    return _ALIASES.get(name, name)


def load_tts_folder(root: str | Path) -> list[Ladder]:
    """Every complete model x benchmark ladder in the folder, paired by question id."""
    root = Path(root)
    if not is_tts_folder(root):
        raise DataError(f"{root}: not a tts_knowledge_budgets folder (expected outputs/<model>/*.jsonl)")
    builder = LadderBuilder()
    order: dict[str, list[str]] = {}
    for path in sorted((root / "outputs").glob("*/*.jsonl")):
        m = _FILE.match(path.name)
        if not m:
            raise DataError(f"{path}: file name is not <model>_<simpleqa|frames>_<setting>.jsonl")
        model, bench, setting = _model_name(m["model"]), BENCHMARKS[m["bench"].lower()], m["setting"]
        known = dict(SETTINGS.get(model, []))
        if setting not in known:
            raise DataError(f"{path}: unknown setting {setting!r} for model {model!r}; known: {', '.join(known) or 'none'}")
        order[model] = [s for s, _ in SETTINGS[model]]
        _read_file(builder, path, model, bench, setting, known[setting])
    return builder.build(order)


def _read_file(builder: LadderBuilder, path: Path, model: str, bench: str, setting: str, budget: float | None) -> None:
    negative = 0
    for row, rec in read_records(path, ()):
        where = f"{path}: row {row}"
        grade = rec.get("grading")
        if grade not in GRADES:
            raise DataError(f"{where}, column grading: expected A, B or C, got {grade!r}")
        if "id" not in rec:
            raise DataError(f"{where}, column id: missing")
        tokens = tokens_used(rec, where)
        if tokens < 0:
            negative += 1
            continue
        builder.add(
            model=model,
            benchmark=bench,
            task=None,
            setting=setting,
            item_id=str(rec["id"]),
            score=GRADES[grade],
            tokens=tokens,
            budget_tokens=budget,
            grade=grade,
            text=str(rec.get("problem") or "") or None,
            where=where,
        )
    if negative:
        builder.note(model, bench, None, f"{path.name}: {negative} row(s) with a negative token count skipped")
