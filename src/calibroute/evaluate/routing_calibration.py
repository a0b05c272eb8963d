"""``calibrate routing``: the escalation threshold that minimises cost under a quality guarantee.

The score calibrated is the one the router escalates on at run time: the shipped difficulty
estimator's P(cheaper model suffices) of ``clip_for_classifier(prompt)``, escalating below
``routing.escalation.threshold``. On a random calibration split, ``guarantee.certify`` finds, for
the strongest model and each cheaper candidate, the lowest threshold that keeps routed quality at
least (1 - eps) of always-strongest with probability >= 1 - delta; the cheapest certified
(weak, threshold) wins, and the separate test split reports what it realised. Repeated splits
measure how often the guarantee held, next to the uncalibrated ``strong_share`` default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..conversation import clip_for_classifier
from ..errors import DataError, InputError
from ..outcomes.outcome_set import OutcomeSet
from .guarantee import certify, strong_lower_bound
from .report import EvalOptions, on_share_basis

DEFAULT_STRONG_SHARE = 0.3  # config.Escalation's default, the uncalibrated baseline
MIN_PROMPTS = 20
Scorer = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class RoutingData:
    """The prompts calibration may use, with their router score, per-model scores and costs."""

    name: str
    models: list[str]
    p_weak: np.ndarray  # P(cheaper suffices) per prompt, as the router computes it
    scores: np.ndarray  # P x M
    costs: np.ndarray  # P x M (USD, or strong-call share on score-only data)
    default_threshold: float  # the router's threshold under the default strong_share
    basis: str = "usd"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    strong: int
    weak: int | None  # None: no threshold certified, always the strongest model
    threshold: float | None
    margin: float
    candidates: int  # cheaper models tried; 0 when the strongest is also the cheapest


@dataclass(frozen=True)
class SplitResult:
    """One calibration/test split: the choice and what it and the default realised on the test prompts."""

    strong: str
    weak: str | None
    threshold: float | None
    escalated_calibration: float
    escalated_test: float
    quality: float
    strong_quality: float
    cost: float
    strong_cost: float
    default_weak: str
    default_quality: float
    default_cost: float
    default_escalated_test: float
    held: bool
    default_held: bool
    candidates: int

    @property
    def saving_vs_strong(self) -> float:
        return 1.0 - self.cost / self.strong_cost if self.strong_cost > 0 else 0.0

    @property
    def saving_vs_default(self) -> float:
        return 1.0 - self.cost / self.default_cost if self.default_cost > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "saving_vs_strong": self.saving_vs_strong, "saving_vs_default": self.saving_vs_default}


def check_levels(eps: float, delta: float) -> None:
    if not 0.0 < eps < 1.0:
        raise InputError(f"--epsilon must be in (0, 1), got {eps:g}")
    if not 0.0 < delta < 1.0:
        raise InputError(f"--delta must be in (0, 1), got {delta:g}")


def batch_scorer(estimator: Any) -> Scorer:
    """The estimator's P(cheaper suffices) on router-clipped prompts, batched when the estimator can."""
    many = getattr(estimator, "p_weak_suffices_batch", None)
    one = estimator.p_weak_suffices

    def score(texts: Sequence[str]) -> np.ndarray:
        clipped = [clip_for_classifier(t) for t in texts]
        return np.asarray(many(clipped) if many else [one(t) for t in clipped], dtype=np.float64)

    return score


def prepare(out: OutcomeSet, scorer: Scorer, default_threshold: float, strong: str | None = None,
            weak: str | None = None) -> RoutingData:
    """Keep the prompts the estimator never trained on, complete rows only, and score them."""
    from ..classify.difficulty_data import TRAIN_DATASETS, hash_heldout, near_dup_keys

    notes = [n for n in out.notes if "learned strategies" not in n]  # eval's fold notes do not apply here
    basis = "usd"
    if not out.has_costs:
        out, _ = on_share_basis(out, EvalOptions(strong=strong, weak=weak))
        basis, notes = "strong-call share", list(out.notes)
    if out.name in TRAIN_DATASETS:
        never_trained = (out.split == "test") if out.split is not None else hash_heldout(near_dup_keys(list(out.prompts)))
        out = out.subset(np.asarray(never_trained, dtype=bool))
        notes.append(f"only the {out.n_prompts} prompts the shipped difficulty estimator never trained on are used")
    full, out = out, out.complete()
    if out.n_prompts < MIN_PROMPTS or len(out.models) < 2:
        raise DataError(f"{out.name}: need at least {MIN_PROMPTS} complete prompts and 2 models to calibrate; "
                        f"{out.n_prompts} of {full.n_prompts} have a score and a cost for all {len(out.models)} "
                        f"model(s): {full.why_incomplete()}")
    notes += [n for n in out.notes if n not in notes]
    return RoutingData(out.name, list(out.models), scorer(list(out.prompts)), out.scores, out.costs,
                       default_threshold, basis, notes)


def choose(data: RoutingData, rows: np.ndarray, eps: float, delta: float, strong: str | None = None,
           weak: str | None = None) -> Choice:
    """The cheapest certified (weak model, threshold) on ``rows``; delta is split 1/3 for E[S], 2/3 for the D bounds."""
    mean_q, mean_c = data.scores[rows].mean(axis=0), data.costs[rows].mean(axis=0)
    s = _index(data, strong) if strong else int(np.argmax(mean_q - 1e-12 * mean_c))
    if weak:
        candidates = [_index(data, weak)]
        if candidates[0] == s:
            raise InputError("--strong and --weak must name different models")
    else:
        candidates = [j for j in range(len(data.models)) if j != s and mean_c[j] < mean_c[s]]
    strong_q = np.clip(data.scores[rows, s], 0.0, 1.0)
    lcb = strong_lower_bound(strong_q, delta / 3)
    best = Choice(s, None, None, 0.0, len(candidates))
    best_cost = float(mean_c[s])
    for w in candidates:
        cert = certify(data.p_weak[rows], strong_q, np.clip(data.scores[rows, w], 0.0, 1.0), eps,
                       delta / 3 / len(candidates), lcb)
        if cert.threshold is None:
            continue
        cost = float(_routed(data, rows, s, w, cert.threshold)[1])
        if cost < best_cost:
            best, best_cost = Choice(s, w, cert.threshold, cert.bound_gap, len(candidates)), cost
    return best


def _index(data: RoutingData, model: str) -> int:
    if model not in data.models:
        raise InputError(f"{data.name}: no model {model!r}; models: {', '.join(data.models)}")
    return data.models.index(model)


def _routed(data: RoutingData, rows: np.ndarray, s: int, w: int | None, threshold: float | None) -> tuple[float, float, float]:
    """(mean quality, mean cost, escalated share) of escalating below ``threshold`` from w to s."""
    if w is None or threshold is None:
        return float(data.scores[rows, s].mean()), float(data.costs[rows, s].mean()), 1.0
    up = data.p_weak[rows] < threshold
    q = np.where(up, data.scores[rows, s], data.scores[rows, w])
    c = np.where(up, data.costs[rows, s], data.costs[rows, w])
    return float(q.mean()), float(c.mean()), float(up.mean())


def _default_weak(data: RoutingData, rows: np.ndarray, s: int) -> int:
    """eval's default pair partner of the strongest: the cheapest model within 90 % of its quality, else the next best."""
    from .strategies import default_pair

    return default_pair(data.costs[rows].mean(axis=0), data.scores[rows].mean(axis=0), strong=s)[1]


def run_split(data: RoutingData, cal: np.ndarray, test: np.ndarray, eps: float, delta: float,
              strong: str | None = None, weak: str | None = None) -> SplitResult:
    ch = choose(data, cal, eps, delta, strong, weak)
    q, c, esc = _routed(data, test, ch.strong, ch.weak, ch.threshold)
    sq, sc, _ = _routed(data, test, ch.strong, None, None)
    dw = ch.weak if ch.weak is not None else (_index(data, weak) if weak else _default_weak(data, cal, ch.strong))
    dq, dc, desc = _routed(data, test, ch.strong, dw, data.default_threshold)
    target = (1.0 - eps) * sq
    return SplitResult(
        strong=data.models[ch.strong],
        weak=None if ch.weak is None else data.models[ch.weak],
        threshold=ch.threshold,
        escalated_calibration=_routed(data, cal, ch.strong, ch.weak, ch.threshold)[2],
        escalated_test=esc,
        quality=q,
        strong_quality=sq,
        cost=c,
        strong_cost=sc,
        default_weak=data.models[dw],
        default_quality=dq,
        default_cost=dc,
        default_escalated_test=desc,
        held=q >= target - 1e-12,
        default_held=dq >= target - 1e-12,
        candidates=ch.candidates,
    )


def random_split(n: int, calibration_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < calibration_share < 1.0:
        raise InputError(f"--calibration-share must be in (0, 1), got {calibration_share:g}")
    order = np.random.default_rng(seed).permutation(n)
    k = round(calibration_share * n)
    if k < MIN_PROMPTS // 2 or n - k < MIN_PROMPTS // 2:
        raise DataError(f"{n} prompts split {k}/{n - k}: too few on one side to calibrate or to test")
    return np.sort(order[:k]), np.sort(order[k:])


def repeated_splits(data: RoutingData, eps: float, delta: float, n_splits: int, calibration_share: float = 0.5,
                    seed: int = 0, strong: str | None = None, weak: str | None = None,
                    tick: Callable[[], None] = lambda: None) -> list[SplitResult]:
    """``n_splits`` independent random calibration/test splits (seeds seed, seed+1, ...)."""
    n = len(data.p_weak)
    results = []
    for i in range(n_splits):
        cal, test = random_split(n, calibration_share, seed + i)
        results.append(run_split(data, cal, test, eps, delta, strong, weak))
        tick()
    return results


def summarise(results: list[SplitResult]) -> dict[str, float]:
    """Rates and means over splits: how often the guarantee held, and what it cost."""
    def mean(f: Callable[[SplitResult], float]) -> float:
        return float(np.mean([f(r) for r in results]))

    return {
        "splits": len(results),
        "held_rate": mean(lambda r: float(r.held)),
        "default_held_rate": mean(lambda r: float(r.default_held)),
        "always_strong_rate": mean(lambda r: float(r.weak is None)),
        "quality_ratio": mean(lambda r: r.quality / r.strong_quality if r.strong_quality else 1.0),
        "default_quality_ratio": mean(lambda r: r.default_quality / r.strong_quality if r.strong_quality else 1.0),
        "saving_vs_strong": mean(lambda r: r.saving_vs_strong),
        "saving_vs_default": mean(lambda r: r.saving_vs_default),
        "default_saving_vs_strong": mean(lambda r: 1.0 - r.default_cost / r.strong_cost if r.strong_cost else 0.0),
        "escalated_test": mean(lambda r: r.escalated_test),
        "threshold_median": float(np.median([r.threshold if r.threshold is not None else 1.0 for r in results])),
    }
