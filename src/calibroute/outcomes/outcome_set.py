"""Per-prompt outcomes of several models: the table every evaluation and calibration replays.

An ``OutcomeSet`` is a P x M table of scores (0..1) and costs (USD per call) for the same
prompts answered by every model. It lives below ``evaluate/`` and ``classify/`` so that
estimators, the evaluation harness, calibration and the shoot-out share it without depending
on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import DataError
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

    def subset(self, rows: np.ndarray | list[int]) -> OutcomeSet:
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

    def select_models(self, models: list[str]) -> OutcomeSet:
        cols = [self.model_index(m) for m in models]
        return replace(self, models=list(models), scores=self.scores[:, cols], costs=self.costs[:, cols])

    @property
    def has_costs(self) -> bool:
        """False for score-only data (judge scores, no costs, prices or tokens for any model)."""
        return not bool(np.isnan(self.costs).all())

    def incomplete(self) -> np.ndarray:
        """P booleans: the prompts lacking a score or a cost for some model."""
        return np.asarray(np.isnan(self.scores).any(axis=1) | np.isnan(self.costs).any(axis=1))

    def why_incomplete(self) -> str:
        """Which column is missing for which model, with how many prompts each: what an error or note should say."""
        reasons = []
        for j, model in enumerate(self.models):
            no_score = int(np.isnan(self.scores[:, j]).sum())
            no_cost = int((np.isnan(self.costs[:, j]) & ~np.isnan(self.scores[:, j])).sum())
            if no_score:
                reasons.append(f"no score (no row) for {model} on {no_score}")
            if no_cost:
                reasons.append(f"no cost for {model} on {no_cost} (column cost_usd empty, and no input_tokens/output_tokens "
                               "with a price from --prices/--config)")
        return "; ".join(reasons) or "none missing"

    def complete(self) -> OutcomeSet:
        """Only the prompts with a score and a cost for every model (notes how many were dropped, and why)."""
        drop = self.incomplete()
        if not drop.any():
            return self
        note = f"dropped {int(drop.sum())} of {self.n_prompts} prompts: {self.why_incomplete()}"
        return replace(self.subset(~drop), notes=[*self.notes, note])

    def with_prices(self, prices: Prices, output_tokens: float | np.ndarray = 0.0) -> OutcomeSet:
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
