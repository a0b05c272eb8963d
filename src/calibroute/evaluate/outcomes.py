"""Per-prompt outcomes of several models: the data model every evaluation replays.

An ``OutcomeSet`` is a P x M table of scores (0..1) and costs (USD per call) for the same
prompts answered by every model. Loaders exist for the shared datasets (``load_dataset``) and
for a documented generic long format (``load_outcomes_file``, CSV / JSONL / Parquet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..tabular import read_records
from .tokens import TOKENIZER_NOTE, Prices, cost_from_tokens, count_tokens


@dataclass(frozen=True)
class OutcomeSet:
    """P prompts x M models; NaN marks a missing score or an unknown cost."""

    name: str
    prompt_ids: list[str]
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # P x M float in [0, 1]
    costs: np.ndarray  # P x M USD per call
    split: np.ndarray | None = None  # P strings "train"/"test" where the dataset has its own split
    tasks: list[str] | None = None  # P task / benchmark names where known
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        p, m = len(self.prompt_ids), len(self.models)
        if len(self.prompts) != p or self.scores.shape != (p, m) or self.costs.shape != (p, m):
            raise DataError(f"{self.name}: inconsistent shapes (prompts {p}, models {m}, scores {self.scores.shape})")
        if self.split is not None and len(self.split) != p or self.tasks is not None and len(self.tasks) != p:
            raise DataError(f"{self.name}: split/tasks length differs from the number of prompts")

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise DataError(f"{self.name}: no model {model!r}; models: {', '.join(self.models)}") from None

    def subset(self, rows: np.ndarray | list[int]) -> "OutcomeSet":
        """The same data restricted to some prompts (an index array or boolean mask)."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            prompt_ids=[self.prompt_ids[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            scores=self.scores[idx],
            costs=self.costs[idx],
            split=None if self.split is None else self.split[idx],
            tasks=None if self.tasks is None else [self.tasks[i] for i in idx],
        )

    def select_models(self, models: list[str]) -> "OutcomeSet":
        cols = [self.model_index(m) for m in models]
        return replace(self, models=list(models), scores=self.scores[:, cols], costs=self.costs[:, cols])

    def complete(self) -> "OutcomeSet":
        """Only the prompts with a score and a cost for every model (notes how many were dropped)."""
        keep = ~(np.isnan(self.scores).any(axis=1) | np.isnan(self.costs).any(axis=1))
        if keep.all():
            return self
        out = self.subset(keep)
        note = f"dropped {int((~keep).sum())} prompts with a missing score or cost"
        return replace(out, notes=[*self.notes, note])

    def with_prices(self, prices: Prices, output_tokens: float | np.ndarray = 0.0) -> "OutcomeSet":
        """Fill unknown costs of priced models from prompt token counts x prices."""
        missing = [j for j, m in enumerate(self.models) if np.isnan(self.costs[:, j]).any() and m in prices]
        if not missing:
            return self
        tin = count_tokens(self.prompts).astype(np.float64)
        costs = self.costs.copy()
        for j in missing:
            col = cost_from_tokens(prices[self.models[j]], tin, np.broadcast_to(output_tokens, tin.shape))
            costs[:, j] = np.where(np.isnan(costs[:, j]), col, costs[:, j])
        return replace(self, costs=costs, notes=[*self.notes, "some costs derived from prices x estimated tokens", TOKENIZER_NOTE])


# name -> "module:function"; each function takes the data root and returns an OutcomeSet.
DATASETS: dict[str, str] = {
    "routellm-mmlu": ".sources:routellm_mmlu",
    "routellm-gsm8k": ".sources:routellm_gsm8k",
    "routerbench": ".sources:routerbench",
    "dcrouter": ".sources:dcrouter",
    "routerarena": ".sources:routerarena",
}


def load_dataset(name: str, root: Path | None = None) -> OutcomeSet:
    """One of the shared datasets by name, read in place from ``root`` (default: ``data_root()``)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if root is None:
        from ..datasets import data_root

        root = data_root()
    module, _, attr = DATASETS[name].partition(":")
    loader: Callable[[Path], OutcomeSet] = getattr(import_module(module, __package__), attr)
    return loader(Path(root))


# ---- the generic long format ----------------------------------------------------------------

REQUIRED = ("prompt_id", "prompt", "model", "score")
OPTIONAL = ("cost_usd", "input_tokens", "output_tokens", "task", "split")


def _number(path: Path, row: int, col: str, value: Any, lo: float = 0.0, hi: float = math.inf) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {row}, column {col}: expected a number, got {value!r}") from None
    if math.isnan(x):
        return None
    if not lo <= x <= hi:
        upper = "" if hi == math.inf else f"..{hi:g}"
        raise DataError(f"{path}: row {row}, column {col}: {x:g} outside {lo:g}{upper}")
    return x


def _text(path: Path, row: int, col: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "":
        raise DataError(f"{path}: row {row}, column {col}: empty")
    return str(value)


def load_outcomes_file(path: Path, prices: dict[str, tuple[float, float]] | None = None) -> OutcomeSet:
    """Read the long format (one row per prompt x model) and pivot it to an OutcomeSet.

    Costs come from ``cost_usd``; else from ``prices`` (USD per million input/output tokens)
    times ``input_tokens``/``output_tokens``, counting missing input tokens with the bundled
    tokenizer (missing output tokens count as 0 and are noted).
    """
    path = Path(path)
    prices = prices or {}
    ids: dict[str, int] = {}
    prompts: list[str] = []
    tasks: list[str | None] = []
    splits: list[str | None] = []
    models: dict[str, int] = {}
    cells: dict[tuple[int, int], tuple[float, float | None, float | None, float | None, int]] = {}
    for row, rec in read_records(path, REQUIRED):
        pid = _text(path, row, "prompt_id", rec.get("prompt_id"))
        prompt = _text(path, row, "prompt", rec.get("prompt"))
        model = _text(path, row, "model", rec.get("model"))
        score = _number(path, row, "score", rec.get("score"), 0.0, 1.0)
        if score is None:
            raise DataError(f"{path}: row {row}, column score: empty")
        cost = _number(path, row, "cost_usd", rec.get("cost_usd"))
        tin = _number(path, row, "input_tokens", rec.get("input_tokens"))
        tout = _number(path, row, "output_tokens", rec.get("output_tokens"))
        split = rec.get("split") or None
        if split is not None and split not in ("train", "test"):
            raise DataError(f"{path}: row {row}, column split: expected train or test, got {split!r}")
        if pid not in ids:
            ids[pid] = len(prompts)
            prompts.append(prompt)
            tasks.append(str(rec["task"]) if rec.get("task") else None)
            splits.append(split)
        elif prompts[ids[pid]] != prompt:
            raise DataError(f"{path}: row {row}, column prompt: differs from the earlier text of prompt_id {pid!r}")
        i, j = ids[pid], models.setdefault(model, len(models))
        if (i, j) in cells:
            raise DataError(f"{path}: row {row}: duplicate prompt_id {pid!r} for model {model!r} (first at row {cells[i, j][4]})")
        cells[i, j] = (score, cost, tin, tout, row)
    if not cells:
        raise DataError(f"{path}: no outcome rows")
    return _pivot(path, list(ids), prompts, list(models), cells, tasks, splits, prices)


def _pivot(
    path: Path,
    ids: list[str],
    prompts: list[str],
    models: list[str],
    cells: dict[tuple[int, int], tuple[float, float | None, float | None, float | None, int]],
    tasks: list[str | None],
    splits: list[str | None],
    prices: Prices,
) -> OutcomeSet:
    p, m = len(ids), len(models)
    scores = np.full((p, m), np.nan)
    costs = np.full((p, m), np.nan)
    tin = np.full((p, m), np.nan)
    tout = np.full((p, m), np.nan)
    for (i, j), (score, cost, ti, to, _row) in cells.items():
        scores[i, j] = score
        costs[i, j] = np.nan if cost is None else cost
        tin[i, j] = np.nan if ti is None else ti
        tout[i, j] = np.nan if to is None else to
    notes: list[str] = []
    need = np.isnan(costs) & ~np.isnan(scores)
    priced = [j for j, name in enumerate(models) if name in prices and need[:, j].any()]
    if priced:
        if np.isnan(tin[:, priced][need[:, priced]]).any():
            counted = count_tokens(prompts).astype(np.float64)
            tin = np.where(np.isnan(tin), counted[:, None], tin)
            notes.append(TOKENIZER_NOTE)
        if np.isnan(tout[:, priced][need[:, priced]]).any():
            notes.append("output tokens unknown for some calls: their cost counts input tokens only")
        for j in priced:
            est = cost_from_tokens(prices[models[j]], tin[:, j], np.nan_to_num(tout[:, j]))
            costs[:, j] = np.where(need[:, j], est, costs[:, j])
        notes.append(f"costs derived from prices x tokens for: {', '.join(models[j] for j in priced)}")
    unpriced = [name for j, name in enumerate(models) if np.isnan(costs[:, j][~np.isnan(scores[:, j])]).any()]
    if unpriced:
        notes.append(f"no cost and no price for: {', '.join(unpriced)}")
    has_split = any(s is not None for s in splits)
    return OutcomeSet(
        name=path.stem,
        prompt_ids=ids,
        prompts=prompts,
        models=models,
        scores=scores,
        costs=costs,
        split=np.array([s or "train" for s in splits]) if has_split else None,
        tasks=[t or "unknown" for t in tasks] if any(t is not None for t in tasks) else None,
        notes=notes,
    )
