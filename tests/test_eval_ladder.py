"""The multi-model calibroute strategy: class ladders (hull of each class's models) climbed by difficulty."""

from __future__ import annotations

import numpy as np
from test_eval_run import STANDIN

from calibroute.evaluate.report import EvalOptions, run_eval
from calibroute.evaluate.strategies import (
    Replay,
    class_ladder_router,
    hull_chain,
    pareto_chain,
)
from calibroute.outcomes import OutcomeSet


def three_tier(n: int = 300, seed: int = 2) -> OutcomeSet:
    """'easy' prompts: every model right; 'medium': mid and top; 'hard': only the top model. Costs 1 : 10 : 100."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, 3, n)  # 0 easy, 1 medium, 2 hard
    words = np.array(["easy", "medium", "hard"])[level]
    prompts = [f"{w} question {i} about {rng.integers(1000)}" for i, w in enumerate(words)]
    scores = np.stack([level == 0, level <= 1, np.ones(n, bool)], axis=1).astype(float)  # cheap, mid, top
    costs = np.tile([1e-5, 1e-4, 1e-3], (n, 1))
    split = np.where(np.arange(n) < n // 2, "train", "test")
    return OutcomeSet("tiers", [f"p{i}" for i in range(n)], prompts, ["cheap", "mid", "top"], scores, costs, split, None, [])


def p_by_level(texts: list[str]) -> np.ndarray:
    return np.array([0.9 if t.startswith("easy") else 0.5 if t.startswith("medium") else 0.1 for t in texts])


def test_hull_chain_drops_a_model_that_mixing_its_neighbours_beats() -> None:
    cost, quality = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.55, 0.9])  # the middle one sits below the chord
    assert pareto_chain(cost, quality) == [0, 1, 2]
    assert hull_chain(cost, quality) == [0, 2]


def test_a_perfect_signal_on_a_three_model_ladder_reaches_top_quality_at_a_fraction_of_its_cost() -> None:
    data = three_tier()
    replay = Replay(data.scores, data.costs, data.models, strong=2, weak=1)
    curve = class_ladder_router("ladder", replay, p_by_level(data.prompts), [(0, 1, 2)] * data.n_prompts)
    perfect = curve.points[curve.points[:, 1] >= 1.0 - 1e-12]
    assert len(perfect) and perfect[:, 0].min() < 0.5 * data.costs[0, 2]  # all right, under half the top model's cost
    assert curve.points[:, 0].min() == data.costs[0, 0]  # the cheapest rung alone is an operating point


def test_with_more_than_two_models_calibroute_is_the_ladder_and_beats_the_pair() -> None:
    est = STANDIN.__class__(classify=STANDIN.classify, pretrained=p_by_level, fit=lambda texts, labels: p_by_level)
    report = run_eval(three_tier(), EvalOptions(router="pretrained"), estimators=est)
    ladder, pair = report.results["calibroute"], report.results["calibroute-pair"]
    assert ladder.aiq > pair.aiq
    assert ladder.saved_at_95 > 0.5
