"""Routing metrics as pure functions of curves: RouteLLM's APGR / CPT, RouterBench's AIQ, and friends.

Conventions: a *curve* is an (n, 2) array of operating points ``(cost, quality)``, cost in USD
per prompt (mean over prompts), quality the mean score in [0, 1]. RouteLLM's metrics use
``(strong_share, quality)`` points instead, with strong_share in [0, 1].
"""

from __future__ import annotations

import numpy as np

ROUTELLM_NUM_RESULTS = 10  # RouteLLM's evaluate.py default (--num-results 10)


def routellm_points(
    strong_win_rate: np.ndarray, strong: np.ndarray, weak: np.ndarray, num_results: int = ROUTELLM_NUM_RESULTS
) -> tuple[np.ndarray, np.ndarray]:
    """(strong_share, quality) at RouteLLM's thresholds, as its ``benchmarks.py`` computes them.

    Thresholds are the ``num_results + 1`` quantile edges of the router's scores
    (``pd.qcut(..., retbins=True)``); a prompt goes to the strong model when its score is
    ``>= threshold``, except at the last edge where it must be ``> threshold``.
    """
    s = np.asarray(strong_win_rate, dtype=np.float64)
    edges = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    share, quality = [], []
    for i, t in enumerate(edges):
        pick = s >= t if i < len(edges) - 1 else s > t
        share.append(pick.mean())
        quality.append(np.where(pick, strong, weak).mean())
    order = np.argsort(share, kind="stable")
    return np.asarray(share)[order], np.asarray(quality)[order]


def apgr(share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float) -> float:
    """Average performance gap recovered: RouteLLM's ``apgr_metric``.

    (AUC of quality over strong share - weak AUC) / (strong AUC - weak AUC), trapezoids over the
    points' own share range (which is [0, 1] for RouteLLM's thresholds).
    """
    x = np.asarray(share, dtype=np.float64)
    y = np.asarray(quality, dtype=np.float64)
    span = float(x[-1] - x[0])
    gap = (strong_quality - weak_quality) * span
    if gap == 0:
        return float("nan")
    return float((np.trapezoid(y, x) - weak_quality * span) / gap)


def cpt(share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float, recovered: float) -> float:
    """Call-performance threshold: the strong share needed to recover ``recovered`` (e.g. 0.5) of the gap.

    As RouteLLM's ``pct_call_metric``: ``np.interp(target, quality, share)`` over points sorted by share.
    """
    target = weak_quality + recovered * (strong_quality - weak_quality)
    return float(np.interp(target, np.asarray(quality, dtype=np.float64), np.asarray(share, dtype=np.float64)))


def strong_calls_saved_at(
    share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float, keep: float = 0.95
) -> float:
    """Share of strong calls saved while keeping ``keep`` of the strong model's quality (RouteLLM's headline basis).

    RouteLLM's "X % cost reduction at 95 % of GPT-4's performance" counts GPT-4 calls: it is
    ``1 - CPT(r)`` with ``r`` the gap share that 95 % of the strong quality stands for.
    """
    gap = strong_quality - weak_quality
    if gap <= 0:
        return float("nan")
    recovered = min(1.0, max(0.0, (keep * strong_quality - weak_quality) / gap))
    return 1.0 - cpt(share, quality, weak_quality, strong_quality, recovered)


def oracle_share_curve(strong: np.ndarray, weak: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """RouteLLM's ``get_optimal_accuracy``: quality when the strong calls go only where they flip a loss."""
    n = len(strong)
    gain = np.sort(np.clip(np.asarray(strong, float) - np.asarray(weak, float), 0, None))[::-1]
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    k = np.floor(np.asarray(shares) * n).astype(int)
    return (np.asarray(weak, float).sum() + cum[np.clip(k, 0, n)]) / n


def nondecreasing_hull(points: np.ndarray) -> np.ndarray:
    """RouterBench's non-decreasing convex hull of (cost, quality) points, sorted by cost.

    The upper concave hull from the cheapest point to the best-quality point (any mixture of two
    operating points is reachable by randomising between them), cut where quality stops rising.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]  # by cost, best quality first among equal costs
    _, first = np.unique(pts[:, 0], return_index=True)
    pts = pts[first]
    hull: list[np.ndarray] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append(p)
    out = np.array(hull)
    best = int(np.argmax(out[:, 1]))
    return out[: best + 1]


def aiq(points: np.ndarray, cost_min: float, cost_max: float) -> float:
    """Average improvement in quality (RouterBench): mean of the non-decreasing hull over [cost_min, cost_max].

    The hull is extended flat to ``cost_max`` and counts as 0 below its cheapest point, as
    RouterBench's ``calc_AIQ`` does. Use the same range for every strategy compared.
    """
    hull = nondecreasing_hull(points)
    if cost_max <= cost_min:
        return float("nan")
    grid = np.linspace(cost_min, cost_max, 4001)
    y = np.interp(grid, hull[:, 0], hull[:, 1], left=0.0, right=float(hull[-1, 1]))
    return float(np.trapezoid(y, grid) / (cost_max - cost_min))


def pareto_front(points: np.ndarray) -> np.ndarray:
    """The points no other point beats on both cost (lower) and quality (higher), sorted by cost."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]
    keep, best = [], -np.inf
    for p in pts:
        if p[1] > best:
            keep.append(p)
            best = p[1]
    return np.array(keep).reshape(-1, 2)


def quality_at_budget(points: np.ndarray, budget: float) -> float:
    """Best quality among operating points that cost at most ``budget`` per prompt (NaN if none)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = pts[:, 0] <= budget * (1 + 1e-9)
    return float(pts[ok, 1].max()) if ok.any() else float("nan")


def cost_saved_at_quality(points: np.ndarray, target_quality: float, reference_cost: float) -> float:
    """Share of ``reference_cost`` saved by the cheapest point with quality >= target (NaN if none)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = pts[:, 1] >= target_quality - 1e-12
    if not ok.any() or reference_cost <= 0:
        return float("nan")
    return float(1.0 - pts[ok, 0].min() / reference_cost)
