"""Routing strategies as cost-quality curves over replayed outcomes.

Every strategy is reduced to operating points ``(mean cost per prompt, mean score)``; routers
with a knob (threshold, cost weight) give many points. For a strong/weak pair, routers that
score prompts also give RouteLLM's ``(strong share, quality)`` points for APGR / CPT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..policy import rung_shares
from .metrics import nondecreasing_hull, oracle_share_curve, routellm_points

CURVE_THRESHOLDS = 41  # operating points per threshold-swept router
LADDER_LEVELS = 81  # operating points of the ladder router (escalation level 0..1)
LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 60), [np.inf]])


@dataclass(frozen=True)
class Curve:
    """One strategy's operating points (sorted by cost) and, for a pair, RouteLLM's points."""

    name: str
    kind: str  # "single", "router", "reference" (random), "bound" (oracle, perfect-verifier cascade)
    points: np.ndarray  # (n, 2): cost, quality
    pair_share: np.ndarray | None = None  # RouteLLM points: share of strong calls ...
    pair_quality: np.ndarray | None = None  # ... and the quality at each

    @staticmethod
    def make(name: str, kind: str, points: np.ndarray, pair: tuple[np.ndarray, np.ndarray] | None = None) -> "Curve":
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
        return Curve(name, kind, pts, None if pair is None else pair[0], None if pair is None else pair[1])


@dataclass(frozen=True)
class Replay:
    """The evaluation rows: realised scores and costs (E x M) and the strong/weak pair."""

    scores: np.ndarray
    costs: np.ndarray
    models: list[str]
    strong: int
    weak: int

    def point(self, choice: np.ndarray) -> tuple[float, float]:
        rows = np.arange(len(choice))
        return float(self.costs[rows, choice].mean()), float(self.scores[rows, choice].mean())


def always(replay: Replay) -> list[Curve]:
    return [
        Curve.make(f"always:{m}", "single", np.array([[replay.costs[:, j].mean(), replay.scores[:, j].mean()]]))
        for j, m in enumerate(replay.models)
    ]


def pair_router(name: str, replay: Replay, strong_score: np.ndarray, kind: str = "router") -> Curve:
    """Send a prompt to the strong model when its score clears a threshold, swept over score quantiles."""
    s = np.asarray(strong_score, dtype=np.float64)
    pts = []
    for t in np.quantile(s, np.linspace(0, 1, CURVE_THRESHOLDS)):
        for pick in (s >= t, s > t):
            pts.append(replay.point(np.where(pick, replay.strong, replay.weak)))
    pair = routellm_points(s, replay.scores[:, replay.strong], replay.scores[:, replay.weak])
    return Curve.make(name, kind, np.array(pts), pair)


def utility_choices(predicted: np.ndarray, expected_cost: np.ndarray) -> list[np.ndarray]:
    """Per lambda, each prompt's argmax(predicted score - lambda * expected cost) (multi-model)."""
    cost = np.broadcast_to(expected_cost / max(float(np.max(expected_cost)), 1e-30), predicted.shape)
    return [np.argmax(-cost if np.isinf(lam) else predicted - lam * cost, axis=1) for lam in LAMBDAS]


def utility_router(name: str, replay: Replay, predicted: np.ndarray, expected_cost: np.ndarray, kind: str = "router") -> Curve:
    """Pick argmax(predicted score - lambda * expected cost) per prompt, lambda swept (multi-model)."""
    pts = [replay.point(choice) for choice in utility_choices(predicted, expected_cost)]
    pair = routellm_points(predicted[:, replay.strong] - predicted[:, replay.weak],
                           replay.scores[:, replay.strong], replay.scores[:, replay.weak])
    return Curve.make(name, kind, np.array(pts), pair)


def random_router(replay: Replay, seed: int = 0) -> Curve:
    """RouteLLM's random router on the pair: a uniform random score per prompt."""
    rng = np.random.default_rng(seed)
    return pair_router("random", replay, rng.random(len(replay.scores)), kind="reference")


def oracle(replay: Replay) -> Curve:
    """Knows every outcome: the cheapest best model per prompt, traded against cost by lambda."""
    cost = replay.costs / max(float(replay.costs.max()), 1e-30)
    pts = []
    for lam in LAMBDAS:
        util = -cost if np.isinf(lam) else replay.scores - lam * cost - 1e-9 * cost
        pts.append(replay.point(np.argmax(util, axis=1)))
    strong, weak = replay.scores[:, replay.strong], replay.scores[:, replay.weak]
    shares = np.linspace(0, 1, 11)
    return Curve.make("oracle", "bound", np.array(pts), (shares, oracle_share_curve(strong, weak, shares)))


def cascade(replay: Replay, chain: list[int], accept_at: float = 0.5) -> Curve:
    """Cheap model first, escalate along ``chain`` while the answer fails; pay for every call made.

    None of the datasets ships a confidence signal (no log-probs), so escalation uses the true
    score as a perfect verifier: this is the best any cascade over this chain can do.
    """
    rows = np.arange(len(replay.scores))
    pts = []
    for depth in range(1, len(chain) + 1):
        done = np.zeros(len(rows), dtype=bool)
        paid = np.zeros(len(rows))
        final = np.zeros(len(rows))
        for j in chain[:depth]:
            active = ~done
            paid[active] += replay.costs[active, j]
            final[active] = replay.scores[active, j]
            done |= active & (replay.scores[:, j] >= accept_at)
        pts.append((paid.mean(), final.mean()))
    return Curve.make("cascade", "bound", np.array(pts))


def class_pair_router(
    name: str, replay: Replay, p_weak: np.ndarray, weak_of: np.ndarray, strong_of: np.ndarray
) -> Curve:
    """calibroute: each prompt's route pair (from its task class); escalate when P(weak suffices) < t."""
    pts = []
    for t in np.quantile(p_weak, np.linspace(0, 1, CURVE_THRESHOLDS)):
        for esc in (p_weak < t, p_weak <= t):
            pts.append(replay.point(np.where(esc, strong_of, weak_of)))
    pair = routellm_points(1.0 - p_weak, replay.scores[:, replay.strong], replay.scores[:, replay.weak])
    return Curve.make(name, "router", np.array(pts), pair)


def ladder_choices(p_weak: np.ndarray, ladders: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Per escalation level (0..1), each prompt's model when it climbs its class's ladder as the product does.

    ``policy.rung_shares`` turns the level into the share of traffic passing each rung, and a
    prompt passes a rung when its P(weak suffices) ranks among that share of the lowest over all
    evaluated traffic (as ``strong_share`` on reference traffic).
    """
    n = len(p_weak)
    rank = np.empty(n)
    rank[np.argsort(p_weak, kind="stable")] = np.arange(n) / n  # share of traffic with a lower estimate
    sizes = np.array([len(lad) for lad in ladders])
    width = int(sizes.max())
    table = np.array([list(lad) + [lad[-1]] * (width - len(lad)) for lad in ladders])
    choices = []
    for level in np.linspace(0.0, 1.0, LADDER_LEVELS):
        rung = np.zeros(n, dtype=np.int64)
        for size in np.unique(sizes):
            sel = sizes == size
            for share in rung_shares(float(level), int(size)):
                rung[sel] += rank[sel] < share
        choices.append(table[np.arange(n), rung])
    return choices


def class_ladder_router(name: str, replay: Replay, p_weak: np.ndarray, ladders: list[tuple[int, ...]]) -> Curve:
    """calibroute with escalation ladders (``ladder_choices``), one operating point per escalation level."""
    return Curve.make(name, "router", np.array([replay.point(c) for c in ladder_choices(p_weak, ladders)]))


def hull_chain(mean_cost: np.ndarray, mean_quality: np.ndarray) -> list[int]:
    """The Pareto chain without models below the chord of their neighbours (mixing those beats them).

    This is the escalation ladder a class gets: each rung is worth its price on the training rows.
    """
    chain = pareto_chain(mean_cost, mean_quality)
    hull = nondecreasing_hull(np.c_[mean_cost[chain], mean_quality[chain]])
    return [j for j in chain if np.any(np.isclose(hull[:, 0], mean_cost[j]) & np.isclose(hull[:, 1], mean_quality[j]))]


def pareto_chain(mean_cost: np.ndarray, mean_quality: np.ndarray) -> list[int]:
    """Model indices on the (cost, quality) Pareto front, cheapest first: a sensible cascade order."""
    order = np.lexsort((-mean_quality, mean_cost))
    chain, best = [], -np.inf
    for j in order:
        if mean_quality[j] > best:
            chain.append(int(j))
            best = mean_quality[j]
    return chain


def default_pair(mean_cost: np.ndarray, mean_quality: np.ndarray, near: float = 0.9,
                 strong: int | None = None) -> tuple[int, int]:
    """(strong, weak): the best model (or ``strong``), and the cheapest one within ``near`` of its quality
    (else the next best on the Pareto front below it)."""
    if strong is None:
        strong = int(np.argmax(mean_quality - 1e-12 * mean_cost))
    cheaper = [j for j in range(len(mean_cost)) if j != strong and mean_cost[j] < mean_cost[strong]]
    if not cheaper:
        cheaper = [j for j in range(len(mean_cost)) if j != strong]
    good = [j for j in cheaper if mean_quality[j] >= near * mean_quality[strong]]
    weak = min(good, key=lambda j: mean_cost[j]) if good else max(cheaper, key=lambda j: mean_quality[j])
    return strong, int(weak)
