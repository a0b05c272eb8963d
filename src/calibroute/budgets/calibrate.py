"""Pick the smallest budget setting whose accuracy is statistically indistinguishable from the best.

For each ladder (one model on one benchmark, settings ordered by compute) a paired bootstrap
over items estimates the accuracy gap between the best setting and every other one. Every
setting shares the same resampled items, so per-item correlation between settings is kept and
the gaps are much tighter than two independent intervals would be.

Definitions (also in docs/budgets.md):

* best: the setting with the highest mean accuracy (ties -> the cheaper one).
* pick: the lowest-compute setting ``s`` with ``lower_ci(acc_best - acc_s) <= tolerance``, i.e. the
  data cannot show that the best beats ``s`` by more than ``tolerance``. With ``rule="equivalent"``
  the stricter ``upper_ci(acc_best - acc_s) <= tolerance`` is required instead: the data must show
  that ``s`` is within ``tolerance`` of the best.
* inverse scaling: the best setting is not the largest one and ``lower_ci(acc_best - acc_top) > 0``:
  the largest budget is significantly worse than a smaller one.
* a flip: an item right (score >= 0.5) at one setting and not right at another.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from .ladder import Ladder

Rule = Literal["indistinguishable", "equivalent"]


@dataclass(frozen=True)
class CalibrationSettings:
    """Knobs of the paired bootstrap; the same settings and seed give the same picks."""

    tolerance: float = 0.0  # accuracy points (0..1) a cheaper setting may trail the best by
    confidence: float = 0.95  # two-sided confidence of the bootstrap interval
    resamples: int = 2000
    seed: int = 0
    rule: Rule = "indistinguishable"

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise InputError(f"tolerance must be in [0, 1) (accuracy points), got {self.tolerance}")
        if not 0.5 <= self.confidence < 1:
            raise InputError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.resamples < 100:
            raise InputError(f"resamples must be at least 100, got {self.resamples}")
        if self.rule not in ("indistinguishable", "equivalent"):
            raise InputError(f"rule must be 'indistinguishable' or 'equivalent', got {self.rule!r}")


@dataclass(frozen=True)
class SettingStats:
    setting: str
    budget_tokens: float | None
    accuracy: float
    ci_low: float
    ci_high: float
    mean_tokens: float
    gap_to_best_low: float  # bootstrap interval of acc_best - acc_setting
    gap_to_best_high: float
    incorrect: float | None  # share graded incorrect / abstained, where grades are known
    abstained: float | None


@dataclass(frozen=True)
class Pick:
    """The calibrated choice for one ladder; the first eight fields are the documented JSON schema."""

    model: str
    benchmark: str
    setting: str
    accuracy: float
    best_setting: str
    best_accuracy: float
    tokens_saved_pct: float  # 100 * (1 - mean tokens at pick / mean tokens at best)
    inverse_scaling: bool
    task: str | None
    n_items: int
    mean_tokens: float
    best_mean_tokens: float
    largest_setting: str
    largest_accuracy: float
    tokens_saved_vs_largest_pct: float
    gap_ci: tuple[float, float]  # interval of acc_best - acc_pick
    drop_ci: tuple[float, float]  # interval of acc_best - acc_largest
    settings: tuple[SettingStats, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["gap_ci"] = list(self.gap_ci)
        out["drop_ci"] = list(self.drop_ci)
        out["settings"] = [asdict(s) for s in self.settings]
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class Flip:
    """Items that change between two settings of a ladder."""

    model: str
    benchmark: str
    task: str | None
    from_setting: str
    to_setting: str
    lost: int  # right -> not right
    lost_to_incorrect: int | None  # ... of which now answered wrongly (graded data only)
    lost_to_abstain: int | None  # ... of which now abstained
    gained: int  # not right -> right
    n_items: int

    @property
    def net(self) -> int:
        return self.gained - self.lost


def _seed_for(ladder: Ladder, seed: int) -> int:
    """A per-ladder seed, so a ladder's result does not depend on which other ladders are loaded."""
    return (seed * 1_000_003 + zlib.crc32(f"{ladder.model}\x00{ladder.benchmark}\x00{ladder.task}".encode())) % 2**32


def bootstrap_means(scores: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """B x S accuracies of S settings over the same B resamples of the N items (paired)."""
    n = scores.shape[1]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    return np.asarray(weights @ scores.T / n)


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha], axis=0)
    return lo, hi


def calibrate_ladder(ladder: Ladder, cfg: CalibrationSettings = CalibrationSettings()) -> Pick:
    """The pick, best setting and inverse-scaling flag of one ladder (deterministic for a seed)."""
    acc = ladder.accuracy()
    tok = ladder.mean_tokens()
    boot = bootstrap_means(ladder.scores, cfg.resamples, _seed_for(ladder, cfg.seed))
    best = int(np.flatnonzero(acc >= acc.max() - 1e-12)[0])
    gap_lo, gap_hi = _interval(boot[:, [best]] - boot, cfg.confidence)
    acc_lo, acc_hi = _interval(boot, cfg.confidence)
    bound = gap_lo if cfg.rule == "indistinguishable" else gap_hi
    ok = (bound <= cfg.tolerance + 1e-12) | (np.arange(len(acc)) == best)
    by_cost = sorted(range(len(acc)), key=lambda s: (tok[s], s))
    pick = next(s for s in by_cost if ok[s])
    top = len(acc) - 1
    inverse = bool(best != top and gap_lo[top] > 0)
    stats = tuple(
        SettingStats(
            setting=ladder.settings[s],
            budget_tokens=ladder.budget_tokens[s],
            accuracy=_r(acc[s]),
            ci_low=_r(acc_lo[s]),
            ci_high=_r(acc_hi[s]),
            mean_tokens=round(float(tok[s]), 1),
            gap_to_best_low=_r(gap_lo[s]),
            gap_to_best_high=_r(gap_hi[s]),
            incorrect=None if ladder.grades is None else _r(np.mean(ladder.grades[s] == "B")),
            abstained=None if ladder.grades is None else _r(np.mean(ladder.grades[s] == "C")),
        )
        for s in range(len(acc))
    )
    return Pick(
        model=ladder.model,
        benchmark=ladder.benchmark,
        setting=ladder.settings[pick],
        accuracy=_r(acc[pick]),
        best_setting=ladder.settings[best],
        best_accuracy=_r(acc[best]),
        tokens_saved_pct=_saved(tok[pick], tok[best]),
        inverse_scaling=inverse,
        task=ladder.task,
        n_items=ladder.n_items,
        mean_tokens=round(float(tok[pick]), 1),
        best_mean_tokens=round(float(tok[best]), 1),
        largest_setting=ladder.settings[top],
        largest_accuracy=_r(acc[top]),
        tokens_saved_vs_largest_pct=_saved(tok[pick], tok[top]),
        gap_ci=(_r(gap_lo[pick]), _r(gap_hi[pick])),
        drop_ci=(_r(gap_lo[top]), _r(gap_hi[top])),
        settings=stats,
        notes=ladder.notes,
    )


def _r(x: float | np.floating[Any]) -> float:
    return round(float(x), 4)


def _saved(used: float, reference: float) -> float:
    return round(100.0 * (1.0 - used / reference), 1) if reference > 0 else 0.0


def calibrate(ladders: list[Ladder], cfg: CalibrationSettings = CalibrationSettings()) -> list[Pick]:
    return [calibrate_ladder(ladder, cfg) for ladder in ladders]


def flips(ladder: Ladder) -> list[Flip]:
    """Items lost and gained between adjacent settings, and between the lowest and highest."""
    right = ladder.correct()
    pairs = [(s, s + 1) for s in range(len(ladder.settings) - 1)]
    if len(ladder.settings) > 2:
        pairs.append((0, len(ladder.settings) - 1))
    out = []
    for a, b in pairs:
        lost = right[a] & ~right[b]
        graded = ladder.grades is not None
        out.append(
            Flip(
                model=ladder.model,
                benchmark=ladder.benchmark,
                task=ladder.task,
                from_setting=ladder.settings[a],
                to_setting=ladder.settings[b],
                lost=int(lost.sum()),
                lost_to_incorrect=int((lost & (ladder.grades[b] == "B")).sum()) if graded else None,  # type: ignore[index]
                lost_to_abstain=int((lost & (ladder.grades[b] == "C")).sum()) if graded else None,  # type: ignore[index]
                gained=int((~right[a] & right[b]).sum()),
                n_items=ladder.n_items,
            )
        )
    return out
