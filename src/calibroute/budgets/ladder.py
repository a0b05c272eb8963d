"""Accuracy-vs-budget data: one model on one benchmark at several budget settings, paired by item.

A ``Ladder`` is what budget calibration works on: an S x N table of scores and tokens used
(S settings ordered from least to most compute, N items answered at every setting). This module
is the data model only; loaders build ladders with ``LadderBuilder``: ``budget_files`` for the
generic long format and the outcomes format, ``tts_data`` for the shared tts_knowledge_budgets folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Ladder:
    """Scores and tokens of one model on one benchmark (and task) per setting, low -> high compute."""

    model: str
    benchmark: str
    task: str | None
    settings: tuple[str, ...]
    budget_tokens: tuple[float | None, ...]  # the numeric budget per setting, where one exists
    item_ids: tuple[str, ...]
    scores: np.ndarray  # S x N in [0, 1]
    tokens: np.ndarray  # S x N tokens used (thinking + answer)
    grades: np.ndarray | None = None  # S x N "A" correct / "B" incorrect / "C" abstained, where known
    texts: tuple[str, ...] | None = None  # the N questions, where known
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        shape = (len(self.settings), len(self.item_ids))
        if self.scores.shape != shape or self.tokens.shape != shape:
            raise DataError(f"{self.label}: scores/tokens are {self.scores.shape}, expected {shape}")
        if self.grades is not None and self.grades.shape != shape:
            raise DataError(f"{self.label}: grades are {self.grades.shape}, expected {shape}")

    @property
    def label(self) -> str:
        task = f" [{self.task}]" if self.task else ""
        return f"{self.model} / {self.benchmark}{task}"

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def accuracy(self) -> np.ndarray:
        return np.asarray(self.scores.mean(axis=1))

    def mean_tokens(self) -> np.ndarray:
        return np.asarray(self.tokens.mean(axis=1))

    def correct(self) -> np.ndarray:
        """Boolean S x N: an item counts as right when its score is at least 0.5."""
        return np.asarray(self.scores >= 0.5)


@dataclass
class _Cell:
    score: float
    tokens: float
    grade: str | None
    where: str


@dataclass
class LadderBuilder:
    """Collects one row per (model, benchmark, task, setting, item) and pairs them into ladders."""

    cells: dict[tuple[str, str, str | None], dict[str, dict[str, _Cell]]] = field(default_factory=dict)
    budgets: dict[tuple[str, str, str | None, str], tuple[float | None, str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    extra_notes: dict[tuple[str, str, str | None], list[str]] = field(default_factory=dict)

    def note(self, model: str, benchmark: str, task: str | None, text: str) -> None:
        """Attach a note (e.g. rows skipped by a loader) to the ladder of model/benchmark/task."""
        self.extra_notes.setdefault((model, benchmark, task), []).append(text)

    def add(
        self,
        *,
        model: str,
        benchmark: str,
        task: str | None,
        setting: str,
        item_id: str,
        score: float,
        tokens: float,
        where: str,
        budget_tokens: float | None = None,
        grade: str | None = None,
        text: str | None = None,
    ) -> None:
        """Add one outcome; ``where`` (e.g. "file: row 7") names it in error messages."""
        key = (model, benchmark, task)
        per_setting = self.cells.setdefault(key, {}).setdefault(setting, {})
        if item_id in per_setting:
            first = per_setting[item_id].where
            raise DataError(f"{where}: duplicate item {item_id!r} for {model}/{benchmark}/{setting} (first at {first})")
        per_setting[item_id] = _Cell(score, tokens, grade, where)
        bkey = (*key, setting)
        if bkey in self.budgets and self.budgets[bkey][0] != budget_tokens:
            raise DataError(
                f"{where}, column budget_tokens: {budget_tokens} differs from {self.budgets[bkey][0]} "
                f"given for setting {setting!r} at {self.budgets[bkey][1]}"
            )
        self.budgets.setdefault(bkey, (budget_tokens, where))
        if text:
            self.texts.setdefault(f"{benchmark}\x00{item_id}", text)

    def build(self, order: Mapping[str, list[str]] | None = None) -> list[Ladder]:
        """Pair items across settings (items missing from any setting are dropped and noted).

        ``order`` maps a model to its settings from low to high compute; otherwise settings are
        ordered by numeric budget when every setting has one, else by mean tokens used.
        """
        ladders = []
        for (model, bench, task), per_setting in sorted(self.cells.items(), key=lambda kv: tuple(map(str, kv[0]))):
            settings = self._order(model, bench, task, per_setting, (order or {}).get(model))
            common = set.intersection(*(set(per_setting[s]) for s in settings))
            union = set().union(*(set(per_setting[s]) for s in settings))
            items = sorted(common, key=_natural)
            if not items:
                raise DataError(f"{model} / {bench}: no item was answered at every setting ({', '.join(settings)})")
            rows = [[per_setting[s][i] for i in items] for s in settings]
            grades = [[c.grade for c in row] for row in rows]
            has_grades = all(g is not None for row in grades for g in row)
            texts = [self.texts.get(f"{bench}\x00{i}") for i in items]
            notes = tuple(self.extra_notes.get((model, bench, task), []))
            if len(union) > len(common):
                notes += (f"{len(union) - len(common)} item(s) missing from some setting were dropped",)
            ladders.append(
                Ladder(
                    model=model,
                    benchmark=bench,
                    task=task,
                    settings=tuple(settings),
                    budget_tokens=tuple(self.budgets[(model, bench, task, s)][0] for s in settings),
                    item_ids=tuple(items),
                    scores=np.array([[c.score for c in row] for row in rows], dtype=np.float64),
                    tokens=np.array([[c.tokens for c in row] for row in rows], dtype=np.float64),
                    grades=np.array(grades, dtype="<U1") if has_grades else None,
                    texts=tuple(t or "" for t in texts) if all(texts) else None,
                    notes=notes,
                )
            )
        if not ladders:
            raise DataError("no budget outcomes found")
        return ladders

    def _order(
        self, model: str, bench: str, task: str | None, per_setting: dict[str, dict[str, _Cell]], given: list[str] | None
    ) -> list[str]:
        if given is not None:
            missing = [s for s in given if s not in per_setting]
            if missing:
                raise DataError(f"{model} / {bench}: setting(s) {', '.join(missing)} have no data")
            return [s for s in given if s in per_setting]
        budgets = {s: self.budgets[(model, bench, task, s)][0] for s in per_setting}
        mean_tok = {s: float(np.mean([c.tokens for c in cells.values()])) for s, cells in per_setting.items()}
        if all(b is not None for b in budgets.values()):
            return sorted(per_setting, key=lambda s: (budgets[s], mean_tok[s], s))
        return sorted(per_setting, key=lambda s: (mean_tok[s], s))


def _natural(item_id: str) -> tuple[int, float, str]:
    """Numeric ids in numeric order, then the rest by name."""
    try:
        return (0, float(item_id), "")
    except ValueError:
        return (1, 0.0, item_id)
