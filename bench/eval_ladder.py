"""Escalation-ladder variants on the multi-model sets: `nice python bench/eval_ladder.py routerbench dcrouter --router cv`.

Compares, on the same split and the same difficulty estimates, the shipped ladder rule
(``class_ladder_router``: one level -> per-rung shares) with a calibrated alternative: per
class and ladder model j, a 2-parameter logistic fit of score_j on logit(P(weak suffices)) over
the training rows, then argmax_j(predicted_j - lambda * cost_j) with lambda swept. Training-row
estimates are in-fold (pretrained: the shipped estimator, which saw these rows) or, with
``--router cv``, also out-of-fold (5 inner fits of the estimator per training split; slow).
Also: one ladder for all classes, a class-only utility router (no difficulty) and the two-model route pair. Prints AIQ
and saved@95 per variant; kNN/MF for reference.
"""

from __future__ import annotations

import argparse

import numpy as np

from calibroute.evaluate.baselines import embed
from calibroute.evaluate.learners import (
    class_ladders,
    class_pairs,
    default_estimators,
    gain_labels,
    make_folds,
    predict_all,
    shipped_estimator_split,
)
from calibroute.evaluate.metrics import aiq, cost_saved_at_quality
from calibroute.evaluate.report import EvalOptions, _resolve_pair
from calibroute.evaluate.strategies import (
    LAMBDAS,
    Curve,
    Replay,
    class_ladder_router,
    class_pair_router,
    ladder_choices,
    utility_choices,
    utility_router,
)
from calibroute.outcomes import OutcomeSet, load_dataset


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Two-parameter logistic regression of soft labels y on x (Newton steps)."""
    design = np.c_[np.ones_like(x), x]
    w = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        step = np.linalg.solve((design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(2), design.T @ (p - y) + l2 * w)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    out: np.ndarray = np.log(p / (1 - p))
    return out


def calibrated_curve(name: str, out: OutcomeSet, rows: np.ndarray, train: np.ndarray, classes: np.ndarray,
                     p_test: np.ndarray, p_train: np.ndarray | None, replay: Replay) -> Curve:
    """argmax over each class's ladder of (calibrated P(score) - lambda * mean cost); p_train None = class means only."""
    ladders = class_ladders(out, train, classes)
    pred = np.full((len(rows), len(out.models)), -np.inf)
    cost = np.zeros_like(pred)
    known = [c for c in ladders if c]
    for cls, ladder in ladders.items():
        sel = train[classes[train] == cls] if cls else train
        mine = np.isin(classes[rows], known, invert=True) if not cls else classes[rows] == cls
        x_tr = logit(p_train[np.searchsorted(train, sel)]) if p_train is not None else np.zeros(len(sel))
        x_te = logit(p_test[mine]) if p_train is not None else np.zeros(int(mine.sum()))
        for j in ladder:
            a, b = logistic(x_tr, out.scores[sel, j])
            pred[mine, j] = 1.0 / (1.0 + np.exp(-(a + b * x_te)))
            cost[mine, j] = out.costs[sel, j].mean()
    scale = cost.max()
    pts = [replay.point(np.argmax(np.where(np.isinf(pred), -np.inf, -cost if np.isinf(lam) else pred - lam * cost / scale), 1))
           for lam in LAMBDAS]
    return Curve.make(name, "router", np.array(pts))


def inner_oof(out: OutcomeSet, train: np.ndarray, classes: np.ndarray, pair: tuple[int, int], fit, n: int = 5) -> np.ndarray:
    """Out-of-fold P(weak suffices) for the training rows: the estimator refitted on 4/5 of them, 5 times."""
    cp = class_pairs(out, train, classes)
    strong = np.array([cp.get(str(c), pair)[0] for c in classes[train]])
    weak = np.array([cp.get(str(c), pair)[1] for c in classes[train]])
    labels = gain_labels(out.scores[train, strong], out.scores[train, weak])
    fold = np.random.default_rng(1).permutation(len(train)) % n
    p = np.zeros(len(train))
    for f in range(n):
        model = fit([out.prompts[i] for i in train[fold != f]], labels[fold != f])
        p[fold == f] = model([out.prompts[i] for i in train[fold == f]])
    return p


def bootstrap_aiq_gap(replay: Replay, ours: list[np.ndarray], theirs: list[np.ndarray], n: int, seed: int = 0) -> tuple[float, float, float]:
    """AIQ(ours) - AIQ(theirs) with a 95 % paired bootstrap CI over prompts (same resample for both)."""
    rows, rng = np.arange(len(replay.scores)), np.random.default_rng(seed)

    def points(choices: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
        return np.array([[replay.costs[idx, c[idx]].mean(), replay.scores[idx, c[idx]].mean()] for c in choices])

    def gap(idx: np.ndarray) -> float:
        a, b = points(ours, idx), points(theirs, idx)
        cmax = max(float(a[:, 0].max()), float(b[:, 0].max()), float(replay.costs[idx].mean(0).max()))
        return aiq(a, 0.0, cmax) - aiq(b, 0.0, cmax)

    draws = np.array([gap(rng.choice(rows, len(rows))) for _ in range(n)])
    return gap(rows), float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--router", default="pretrained", choices=("pretrained", "cv"))
    ap.add_argument("--bootstrap", type=int, default=0, help="paired bootstrap resamples for AIQ(ladder) - AIQ(kNN / MF)")
    args = ap.parse_args()
    est = default_estimators()
    for name in args.datasets:
        out = load_dataset(name)
        out = (shipped_estimator_split(out) if args.router == "pretrained" else out).complete()
        folds = make_folds(out)
        if len(folds.pairs) != 1:
            raise SystemExit(f"{name}: needs a dataset with its own train/test split")
        train, _ = folds.pairs[0]
        rows = folds.eval_rows
        pair = _resolve_pair(out, train, EvalOptions(router=args.router))
        pred = predict_all(out, folds, embed(out.prompts), args.router, pair, est)
        assert pred.p_weak is not None
        classes = est.classify(list(out.prompts))
        replay = Replay(out.scores[rows], out.costs[rows], out.models, *pair)
        if args.router == "pretrained":
            assert est.pretrained is not None
            p_in = est.pretrained([out.prompts[i] for i in train])
        else:
            assert est.fit is not None
            cp = class_pairs(out, train, classes)
            s = np.array([cp.get(str(c), pair)[0] for c in classes[train]])
            w = np.array([cp.get(str(c), pair)[1] for c in classes[train]])
            model = est.fit([out.prompts[i] for i in train], gain_labels(out.scores[train, s], out.scores[train, w]))
            p_in = model([out.prompts[i] for i in train])
        curves = [
            utility_router("knn", replay, pred.knn, pred.expected_cost),
            utility_router("mf", replay, pred.mf, pred.expected_cost),
            class_pair_router("calibroute-pair", replay, pred.p_weak, pred.weak_of, pred.strong_of),
            class_ladder_router("ladder: level rule (shipped)", replay, pred.p_weak, pred.ladders),
            class_ladder_router("one ladder for every class", replay, pred.p_weak, [class_ladders(out, train, classes)[""]] * len(rows)),
            calibrated_curve("ladder: calibrated, in-fold", out, rows, train, classes, pred.p_weak, p_in, replay),
            calibrated_curve("class only (no difficulty)", out, rows, train, classes, pred.p_weak, None, replay),
        ]
        if args.router == "cv":
            assert est.fit is not None
            p_oof = inner_oof(out, train, classes, pair, est.fit)
            curves.append(calibrated_curve("ladder: calibrated, out-of-fold", out, rows, train, classes, pred.p_weak, p_oof, replay))
        singles = np.c_[replay.costs.mean(0), replay.scores.mean(0)]
        best = int(np.argmax(singles[:, 1]))
        cmax = max(float(singles[:, 0].max()), *(float(c.points[:, 0].max()) for c in curves))
        print(f"## {name} ({args.router}, {len(rows)} prompts)")
        for c in curves:
            saved = cost_saved_at_quality(c.points, 0.95 * singles[best, 1], singles[best, 0])
            print(f"{c.name:34s} aiq={aiq(c.points, 0.0, cmax):.3f} saved@95={saved:.3f}")
        if args.bootstrap:
            ours = ladder_choices(pred.p_weak, pred.ladders)
            for other, q in (("knn", pred.knn), ("mf", pred.mf)):
                d, lo, hi = bootstrap_aiq_gap(replay, ours, utility_choices(q, pred.expected_cost), args.bootstrap)
                print(f"AIQ(ladder) - AIQ({other}) = {d:+.3f} [{lo:+.3f}, {hi:+.3f}] (95 % paired bootstrap, {args.bootstrap} draws)")


if __name__ == "__main__":
    main()
