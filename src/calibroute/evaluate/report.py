"""Run every strategy on one OutcomeSet and summarise: the library entry point of ``calibroute eval``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from ..outcomes.outcome_set import OutcomeSet
from .baselines import embed
from .learners import (
    CalibrouteEstimators,
    Folds,
    check_estimators,
    default_estimators,
    make_folds,
    predict_all,
    shipped_estimator_split,
)
from .metrics import (
    aiq,
    apgr,
    cost_saved_at_quality,
    cpt,
    pareto_front,
    quality_at_budget,
    strong_calls_saved_at,
)
from .strategies import (
    Curve,
    Replay,
    always,
    cascade,
    class_ladder_router,
    class_pair_router,
    default_pair,
    oracle,
    pair_router,
    pareto_chain,
    random_router,
    utility_router,
)

SHARE_BASIS = "strong-call share"
BUDGET_SHARES = (0.1, 0.2, 0.4, 0.6)  # fixed budgets as shares of the best single model's cost
KEEP_QUALITY = 0.95
Tick = Callable[[str], None]


@dataclass(frozen=True)
class EvalOptions:
    router: str = "pretrained"  # or "cv"
    strong: str | None = None
    weak: str | None = None
    n_folds: int = 5
    seed: int = 0
    with_calibroute: bool = True


@dataclass(frozen=True)
class StrategyResult:
    curve: Curve
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    aiq: float
    at_budget: dict[float, float | None]  # None on score-only data: no dollars to budget
    saved_at_95: float | None
    calls_saved_at_95: float | None = None  # share of strong calls saved at >= 95 % of the strong model's quality

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.curve.kind,
            "apgr": _num(self.apgr),
            "cpt50": _num(self.cpt50),
            "cpt80": _num(self.cpt80),
            "aiq": _num(self.aiq),
            "quality_at_budget": {f"{k:g}": _num(v) for k, v in self.at_budget.items()},
            "cost_saved_at_95pct_quality": _num(self.saved_at_95),
            "strong_calls_saved_at_95pct_quality": _num(self.calls_saved_at_95),
            "curve": [[float(c), float(q)] for c, q in self.curve.points],
            "pair_curve": None if self.curve.pair_share is None else [
                [float(s), float(q)] for s, q in zip(self.curve.pair_share, self.curve.pair_quality)  # type: ignore[arg-type]
            ],
        }


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    n_prompts: int
    models: list[str]
    strong: str
    weak: str
    best_model: str
    best_quality: float
    best_cost: float
    folds: str
    router: str
    results: dict[str, StrategyResult]
    pareto: np.ndarray
    notes: list[str] = field(default_factory=list)
    basis: str = "usd"  # what "cost" means: USD per prompt, or SHARE_BASIS on score-only data

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n_prompts": self.n_prompts,
            "models": self.models,
            "strong": self.strong,
            "weak": self.weak,
            "best_model": {"name": self.best_model, "quality": self.best_quality, "cost": self.best_cost},
            "evaluation": self.folds,
            "router": self.router,
            "cost_basis": self.basis,
            "pareto_front": [[float(c), float(q)] for c, q in self.pareto],
            "notes": self.notes,
            "strategies": {name: r.to_dict() for name, r in self.results.items()},
        }


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _resolve_pair(out: OutcomeSet, rows: np.ndarray, opts: EvalOptions) -> tuple[int, int]:
    strong_d, weak_d = default_pair(np.nanmean(out.costs[rows], 0), np.nanmean(out.scores[rows], 0))
    strong = out.model_index(opts.strong) if opts.strong else strong_d
    weak = out.model_index(opts.weak) if opts.weak else (weak_d if weak_d != strong else 1 - strong)
    if strong == weak:
        raise InputError("--strong and --weak must name different models")
    return strong, weak


def _summarise(curve: Curve, replay: Replay, cost_max: float, best_q: float, best_c: float, dollars: bool) -> StrategyResult:
    wq, sq = float(replay.scores[:, replay.weak].mean()), float(replay.scores[:, replay.strong].mean())
    a = c50 = c80 = calls95 = None
    if curve.pair_share is not None and curve.pair_quality is not None:
        a = apgr(curve.pair_share, curve.pair_quality, wq, sq)
        c50 = cpt(curve.pair_share, curve.pair_quality, wq, sq, 0.5)
        c80 = cpt(curve.pair_share, curve.pair_quality, wq, sq, 0.8)
        calls95 = strong_calls_saved_at(curve.pair_share, curve.pair_quality, wq, sq, KEEP_QUALITY)
    return StrategyResult(
        curve=curve,
        apgr=a,
        cpt50=c50,
        cpt80=c80,
        aiq=aiq(curve.points, 0.0, cost_max),
        at_budget={s: quality_at_budget(curve.points, s * best_c) if dollars else None for s in BUDGET_SHARES},
        saved_at_95=cost_saved_at_quality(curve.points, KEEP_QUALITY * best_q, best_c) if dollars else None,
        calls_saved_at_95=calls95,
    )


def combine_p_weak(p_weak: np.ndarray, knn_gap: np.ndarray) -> np.ndarray:
    """Equal-weight rank average of the difficulty estimate and the kNN neighbours' strong-minus-weak gap.

    Both signals are out-of-fold; ranks put them on one scale without fitting any weight, so
    nothing is tuned on the prompts being scored. Returned as a pseudo P(weak suffices) in [0, 1].
    """
    out: np.ndarray = 0.5 * (_rank01(np.asarray(p_weak)) + _rank01(-np.asarray(knn_gap)))
    return out


def _rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1], ties sharing their mean rank."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, inv = np.unique(x, return_inverse=True)
    mean_rank = np.bincount(inv, ranks) / np.bincount(inv)
    out: np.ndarray = mean_rank[inv] / max(len(x) - 1, 1)
    return out


def run_eval(
    out: OutcomeSet,
    opts: EvalOptions = EvalOptions(),
    estimators: CalibrouteEstimators | None = None,
    tick: Tick = lambda _: None,
) -> EvalReport:
    """Replay every strategy on ``out``; learned ones never see the prompts they are scored on."""
    if opts.router not in ("pretrained", "cv"):
        raise InputError(f"--router must be pretrained or cv, not {opts.router!r}")
    basis = "usd" if out.has_costs else SHARE_BASIS
    if basis == SHARE_BASIS:
        out, opts = on_share_basis(out, opts)
    if opts.router == "pretrained" and opts.with_calibroute:
        out = shipped_estimator_split(out)
    full, out = out, out.complete()
    if out.n_prompts < 10 or len(out.models) < 2:
        raise DataError(f"{out.name}: need at least 10 complete prompts and 2 models to evaluate; {out.n_prompts} of "
                        f"{full.n_prompts} prompts have a score and a cost for all {len(out.models)} model(s): "
                        f"{full.why_incomplete()}")
    folds: Folds = make_folds(out, opts.n_folds, opts.seed)
    rows = folds.eval_rows
    train_rows = np.unique(np.concatenate([tr for tr, _ in folds.pairs]))
    strong, weak = _resolve_pair(out, train_rows, opts)
    replay = Replay(out.scores[rows], out.costs[rows], out.models, strong, weak)
    if opts.with_calibroute and estimators is None:
        estimators = default_estimators()
    if opts.with_calibroute and estimators is not None:
        check_estimators(estimators, opts.router)
    emb = embed(out.prompts)
    tick("embed")
    pred = predict_all(out, folds, emb, opts.router, (strong, weak), estimators if opts.with_calibroute else None, tick)

    curves = always(replay) + [random_router(replay, opts.seed), oracle(replay)]
    multi = len(out.models) > 2
    for name, q in (("knn", pred.knn), ("mf", pred.mf)):
        if multi:
            curves.append(utility_router(name, replay, q, pred.expected_cost))
        else:
            curves.append(pair_router(name, replay, q[:, strong] - q[:, weak]))
    mean_c, mean_q = np.nanmean(out.costs[train_rows], 0), np.nanmean(out.scores[train_rows], 0)
    curves.append(cascade(replay, pareto_chain(mean_c, mean_q)))
    if pred.p_weak is not None:
        # With >2 models calibroute climbs its class's ladder; the two-model route pair stays as "calibroute-pair".
        if multi:
            curves.append(class_ladder_router("calibroute", replay, pred.p_weak, pred.ladders))
        curves.append(class_pair_router("calibroute-pair" if multi else "calibroute", replay, pred.p_weak,
                                        pred.weak_of, pred.strong_of))
        rows_e = np.arange(len(rows))
        knn_gap = pred.knn[rows_e, pred.strong_of] - pred.knn[rows_e, pred.weak_of]
        curves.append(class_pair_router("calibroute+knn", replay, combine_p_weak(pred.p_weak, knn_gap),
                                        pred.weak_of, pred.strong_of))
    tick("curves")

    singles = np.array([[replay.costs[:, j].mean(), replay.scores[:, j].mean()] for j in range(len(out.models))])
    best = int(np.argmax(singles[:, 1] - 1e-12 * singles[:, 0]))
    cost_max = max(float(c.points[:, 0].max()) for c in curves)
    results = {c.name: _summarise(c, replay, cost_max, float(singles[best, 1]), float(singles[best, 0]), basis == "usd")
               for c in curves}
    notes = [*out.notes, f"evaluated on {len(rows)} prompts: {folds.description}"]
    if opts.router == "pretrained":
        notes.append("calibroute: shipped estimators, not trained on this data; kNN/MF are trained on the folds")
    return EvalReport(
        dataset=out.name,
        n_prompts=len(rows),
        models=list(out.models),
        strong=out.models[strong],
        weak=out.models[weak],
        best_model=out.models[best],
        best_quality=float(singles[best, 1]),
        best_cost=float(singles[best, 0]),
        folds=folds.description,
        router=opts.router,
        results=results,
        pareto=pareto_front(np.vstack([c.points for c in curves if c.kind != "bound"])),
        notes=notes,
        basis=basis,
    )


def on_share_basis(out: OutcomeSet, opts: EvalOptions) -> tuple[OutcomeSet, EvalOptions]:
    """Score-only data: the strong/weak pair alone, a strong call costing 1 and a weak one 0.

    Every cost is then the share of strong-model calls, RouteLLM's basis: APGR, CPT and the
    curves keep their meaning; dollar metrics (q@budget, saved@95%) are left out.
    """
    if len(out.models) < 2:
        raise DataError(f"{out.name}: score-only data needs at least 2 models, found {', '.join(out.models) or 'none'}")
    mean_q = np.nanmean(out.scores, axis=0)
    strong = out.model_index(opts.strong) if opts.strong else int(np.nanargmax(mean_q))
    others = [j for j in range(len(out.models)) if j != strong]
    weak = out.model_index(opts.weak) if opts.weak else min(others, key=lambda j: (mean_q[j], j))
    if strong == weak:
        raise InputError("--strong and --weak must name different models")
    pair = out.select_models([out.models[strong], out.models[weak]])
    picked = "" if opts.strong and opts.weak else " (default: the best and the worst by mean score; --strong/--weak choose)"
    note = (f"score-only data (no cost_usd, tokens or prices): evaluated {pair.models[0]} (strong) vs {pair.models[1]} "
            f"(weak){picked} on the share of strong-model calls, RouteLLM's basis; cost = strong-call share, "
            "dollar metrics left out")
    dropped = [m for m in out.models if m not in pair.models]
    if dropped:
        note += f"; other models not evaluated: {', '.join(dropped)}"
    costs = np.tile(np.array([1.0, 0.0]), (pair.n_prompts, 1))
    shared = replace(pair, costs=np.where(np.isnan(pair.scores), np.nan, costs),
                     notes=[n for n in pair.notes if not n.startswith("no cost and no price")] + [note])
    return shared, replace(opts, strong=pair.models[0], weak=pair.models[1])
