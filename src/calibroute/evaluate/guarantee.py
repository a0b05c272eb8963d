"""Learn-then-Test for an escalation threshold: a quality guarantee that holds with probability 1 - delta.

The claim to certify for a threshold t (escalate when P(cheaper suffices) < t):

    E[routed quality] >= (1 - eps) * E[strong quality]
    <=>  E[D+(t)] - E[D-(t)] <= eps * E[S]

with, per prompt, S the strong model's score, D+ = max(S - W, 0) on prompts left with the weak model
(quality lost) and D- = max(W - S, 0) on them (quality gained). All three lie in [0, 1], and D+ and
D- are rare, so bounding them apart is far tighter than bounding one signed loss near its worst-case
variance. Each is bounded with the Hoeffding-Bentkus p-value (Bates et al. 2021, "Distribution-free,
risk-controlling prediction sets"; the inequality holds for any [0, 1]-valued mean, binary or not),
inverted into a one-sided confidence bound at delta/3: a threshold is certified when
UCB(D+) - LCB(D-) <= eps * LCB(S). If the claim is false, certifying it needs one bound to fail, so
each test has level delta (union bound).

Thresholds are tested in a fixed order, from escalating nearly everything down to escalating nothing,
stopping at the first one not certified (fixed-sequence testing, Angelopoulos et al. 2021,
"Learn then Test"): the family-wise error stays at delta with no correction for the grid's size,
because the grid is fixed before the data is seen. The cheapest certified threshold is the last one.
With several candidate weak models, each sequence gets delta / K of the D budget (Bonferroni).

Pure numpy (no scipy): binomial tails from log-factorials, confidence bounds by bisection, cached
per (n, delta) because calibration sets of one size share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

GRID = np.round(np.linspace(1.0, 0.0, 1001), 6)  # thresholds, most to least escalation; fixed before any data
_BISECT = 50
_CHUNK = 4_000_000  # matrix cells per binomial-tail batch


@cache
def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def binom_cdf(k: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """P(Binomial(n, p) <= k), elementwise over k (integers 0..n) and p in (0, 1)."""
    k = np.asarray(k, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1 - 1e-16)
    out = np.empty(np.broadcast(k, p).shape)
    k, p = np.broadcast_arrays(k, p)
    lf = _log_factorials(n)
    flat_k, flat_p, flat_out = k.ravel(), p.ravel(), out.ravel()
    width = int(flat_k.max(initial=0)) + 1
    step = max(1, _CHUNK // width)
    j = np.arange(width)
    log_choose = lf[n] - lf[j] - lf[n - np.minimum(j, n)]
    for start in range(0, flat_k.size, step):
        kk, pp = flat_k[start : start + step, None], flat_p[start : start + step, None]
        logpmf = log_choose + j * np.log(pp) + (n - j) * np.log1p(-pp)
        logpmf = np.where(j <= kk, logpmf, -np.inf)
        top = logpmf.max(axis=1, keepdims=True)
        flat_out[start : start + step] = np.exp(top[:, 0]) * np.exp(logpmf - top).sum(axis=1)
    return np.minimum(out, 1.0)


def _kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bernoulli KL divergence h1(a, b), with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(a > 0, a * np.log(a / b), 0.0)
        t2 = np.where(a < 1, (1 - a) * np.log((1 - a) / (1 - b)), 0.0)
    return np.asarray(t1 + t2)


def hb_pvalue(k: np.ndarray, n: int, alpha: np.ndarray) -> np.ndarray:
    """Hoeffding-Bentkus p-value for H0: mean > alpha, from k = ceil(n * empirical mean) of n values in [0, 1]."""
    k = np.asarray(k, dtype=np.int64)
    alpha = np.clip(np.asarray(alpha, dtype=np.float64), 1e-12, 1 - 1e-12)
    rhat = k / n
    hoeffding = np.exp(-n * _kl(np.minimum(rhat, alpha), alpha))
    bentkus = math.e * binom_cdf(k, n, alpha)
    return np.asarray(np.minimum(1.0, np.minimum(hoeffding, bentkus)))


@cache
def _ucb_cached(k: int, n: int, delta: float) -> float:
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0  # p-value is 1 at alpha <= k/n and falls towards 0 as alpha -> 1
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        if hb_pvalue(np.array([k]), n, np.array([mid]))[0] <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def upper_bound(values: np.ndarray, delta: float) -> float:
    """(1 - delta) upper confidence bound on the mean of [0, 1]-valued ``values`` (Hoeffding-Bentkus)."""
    n = int(values.size)
    if n == 0:
        return 1.0
    k = min(n, math.ceil(float(values.sum()) - 1e-9))  # rounding the sum up is conservative
    return _ucb_cached(max(k, 0), n, float(delta))


def lower_bound(values: np.ndarray, delta: float) -> float:
    """(1 - delta) lower confidence bound on the mean of [0, 1]-valued ``values``."""
    return 1.0 - upper_bound(1.0 - np.asarray(values, dtype=np.float64), delta)


@dataclass(frozen=True)
class Certified:
    """The cheapest certified threshold of one (strong, weak) sequence; None when none was certified."""

    threshold: float | None
    n_tested: int  # thresholds tested before the sequence stopped
    bound_gap: float  # at the chosen threshold: eps * LCB(S) - (UCB(D+) - LCB(D-)), the certified margin


def strong_lower_bound(strong: np.ndarray, delta: float) -> float:
    """LCB(S) at ``delta``: the always-strongest quality the guarantee is measured against."""
    return lower_bound(np.clip(strong, 0.0, 1.0), delta)


def certify(
    p_weak: np.ndarray,
    strong: np.ndarray,
    weak: np.ndarray,
    eps: float,
    delta_d: float,
    strong_lcb: float,
    grid: np.ndarray = GRID,
) -> Certified:
    """Fixed-sequence test of ``grid`` (most escalation first) on one calibration set.

    ``delta_d`` is the level of each of the two D bounds; ``strong_lcb`` the lower bound on E[S]
    computed once (at its own share of delta) for every candidate sequence.
    """
    gain = np.clip(strong - weak, 0.0, 1.0)  # what the strong model adds where it is better
    loss = np.clip(weak - strong, 0.0, 1.0)
    budget = eps * strong_lcb
    chosen, margin, tested = None, 0.0, 0
    for t in grid:
        kept_weak = p_weak >= t
        if not kept_weak.any():
            continue  # the same routing as always-strong: nothing to certify
        tested += 1
        d_plus = np.where(kept_weak, gain, 0.0)
        d_minus = np.where(kept_weak, loss, 0.0)
        gap = budget - (upper_bound(d_plus, delta_d) - lower_bound(d_minus, delta_d))
        if gap < 0:
            break
        chosen, margin = float(t), gap
    return Certified(chosen, tested, margin)
