"""The generic long outcomes format: one row per prompt x model, CSV / JSONL / Parquet.

``calibroute eval``, ``calibroute calibrate routing`` and difficulty training read it; the
shoot-out writes it (``outcomes.writer``). Columns: docs/eval.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..tabular import read_records
from .outcome_set import OutcomeSet
from .tokens import TOKENIZER_NOTE, Prices, cost_from_tokens, count_tokens

REQUIRED = ("prompt_id", "prompt", "model", "score")
# output_tokens counts every generated token, reasoning included (as OpenAI's completion_tokens);
# reasoning_tokens is the thinking part of them. A row with a budget is the model at that budget:
# eval treats "model@budget" as a candidate of its own, calibrate budgets reads budget as the setting.
OPTIONAL = ("budget", "cost_usd", "input_tokens", "output_tokens", "reasoning_tokens", "latency_s", "ttft_s",
            "task", "split", "error")


def candidate_name(model: str, budget: str | None) -> str:
    """The name a (model, budget) pair goes by in an OutcomeSet: ``model@budget``, or the model alone."""
    return f"{model}@{budget}" if budget else model


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
    bases: dict[str, str] = {}  # candidate name -> model name (prices are per model)
    cells: dict[tuple[int, int], tuple[float, float | None, float | None, float | None, int]] = {}
    for row, rec in read_records(path, REQUIRED):
        pid = _text(path, row, "prompt_id", rec.get("prompt_id"))
        prompt = _text(path, row, "prompt", rec.get("prompt"))
        base = _text(path, row, "model", rec.get("model"))
        budget = rec.get("budget")
        model = candidate_name(base, None if budget is None or str(budget).strip() == "" else str(budget).strip())
        bases[model] = base
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
    priced = {name: prices[bases[name]] for name in models if bases[name] in prices}
    return _pivot(path, list(ids), prompts, list(models), cells, tasks, splits, priced)


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
