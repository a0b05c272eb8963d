"""Routing metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from calibroute.evaluate.metrics import (
    aiq,
    apgr,
    cost_saved_at_quality,
    cpt,
    nondecreasing_hull,
    oracle_share_curve,
    pareto_front,
    quality_at_budget,
    routellm_points,
    strong_calls_saved_at,
)


def test_apgr_of_the_straight_line_is_one_half() -> None:
    # Random routing interpolates linearly between weak (0.6) and strong (0.8): half the area.
    share = np.array([0.0, 0.5, 1.0])
    assert apgr(share, np.array([0.6, 0.7, 0.8]), 0.6, 0.8) == pytest.approx(0.5)


def test_apgr_of_a_toy_router_by_hand() -> None:
    # Points (0, .6), (.5, .78), (1, .8). Trapezoids: .5*(.6+.78)/2 + .5*(.78+.8)/2 = .74
    # (0.74 - 0.6) / (0.8 - 0.6) = 0.7
    share = np.array([0.0, 0.5, 1.0])
    assert apgr(share, np.array([0.6, 0.78, 0.8]), 0.6, 0.8) == pytest.approx(0.7)


def test_cpt_interpolates_the_share_for_the_recovered_gap() -> None:
    share = np.array([0.0, 0.5, 1.0])
    quality = np.array([0.6, 0.78, 0.8])
    # 50 % of the gap: quality 0.7, reached between (0, .6) and (.5, .78): 0.5 * 0.1/0.18
    assert cpt(share, quality, 0.6, 0.8, 0.5) == pytest.approx(0.5 * 0.1 / 0.18)
    # 80 %: quality 0.76 -> 0.5 * 0.16/0.18
    assert cpt(share, quality, 0.6, 0.8, 0.8) == pytest.approx(0.5 * 0.16 / 0.18)


def test_strong_calls_saved_at_95pct_is_one_minus_cpt_of_the_matching_gap_share() -> None:
    share = np.array([0.0, 0.5, 1.0])
    quality = np.array([0.6, 0.78, 0.8])
    # 95 % of 0.8 is 0.76: 80 % of the 0.6 -> 0.8 gap, reached at share 0.5 * 0.16/0.18
    assert strong_calls_saved_at(share, quality, 0.6, 0.8, 0.95) == pytest.approx(1 - 0.5 * 0.16 / 0.18)
    # a weak model already within 95 % saves every strong call
    assert strong_calls_saved_at(share, np.array([0.78, 0.79, 0.8]), 0.78, 0.8, 0.95) == pytest.approx(1.0)


def test_routellm_points_follow_the_quantile_thresholds() -> None:
    strong = np.array([1, 1, 1, 1], dtype=float)
    weak = np.array([1, 1, 0, 0], dtype=float)
    score = np.array([0.1, 0.2, 0.8, 0.9])  # the router ranks the weak failures highest
    share, quality = routellm_points(score, strong, weak, num_results=4)
    np.testing.assert_allclose(share, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(quality, [0.5, 0.75, 1.0, 1.0, 1.0])
    # AUC = .25*(.5+.75)/2 + .25*(.75+1)/2 + .25 + .25 = .875 -> (.875 - .5) / (1 - .5)
    assert apgr(share, quality, 0.5, 1.0) == pytest.approx(0.75)


def test_oracle_share_curve_spends_strong_calls_only_on_flips() -> None:
    strong = np.array([1, 1, 0, 1], dtype=float)
    weak = np.array([0, 1, 1, 0], dtype=float)
    np.testing.assert_allclose(oracle_share_curve(strong, weak, np.array([0.0, 0.25, 0.5, 1.0])), [0.5, 0.75, 1.0, 1.0])


def test_nondecreasing_hull_drops_dominated_and_interior_points() -> None:
    pts = np.array([[1, 0.5], [2, 0.55], [3, 0.8], [4, 0.7], [2.5, 0.4]])
    np.testing.assert_allclose(nondecreasing_hull(pts), [[1, 0.5], [3, 0.8]])


def test_aiq_area_by_hand() -> None:
    # Hull (1, .5) -> (3, .8), flat to 5, zero below 1; range [0, 5]:
    # area = 0 + (2 * (0.5 + 0.8) / 2) + 2 * 0.8 = 1.3 + 1.6 = 2.9 -> AIQ 0.58
    pts = np.array([[1, 0.5], [3, 0.8]])
    assert aiq(pts, 0.0, 5.0) == pytest.approx(0.58, abs=1e-3)


def test_aiq_of_a_single_model_counts_only_costs_above_it() -> None:
    assert aiq(np.array([[2.0, 0.9]]), 0.0, 4.0) == pytest.approx(0.45, abs=1e-3)


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = np.array([[1, 0.5], [2, 0.4], [2, 0.6], [3, 0.6], [4, 0.9]])
    np.testing.assert_allclose(pareto_front(pts), [[1, 0.5], [2, 0.6], [4, 0.9]])


def test_quality_at_budget_and_cost_saved() -> None:
    pts = np.array([[1, 0.5], [2, 0.78], [5, 0.8]])
    assert quality_at_budget(pts, 2.0) == pytest.approx(0.78)
    assert np.isnan(quality_at_budget(pts, 0.5))
    # 95 % of 0.8 = 0.76: first reached at cost 2, i.e. 60 % saved against cost 5
    assert cost_saved_at_quality(pts, 0.76, 5.0) == pytest.approx(0.6)
    assert np.isnan(cost_saved_at_quality(pts, 0.95, 5.0))
