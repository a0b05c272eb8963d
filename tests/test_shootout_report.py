"""Shoot-out summary arithmetic: Wilson intervals, dollars per request and per correct answer, the Pareto front."""

from __future__ import annotations

import pytest

from calibroute.shootout.report import pareto_front, summarise, wilson
from calibroute.shootout.store import CallRecord


def test_wilson_interval_matches_the_textbook_values() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # never below 0, not a zero-width interval
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def _rec(i: int, model: str, task: str, score: float, cost: float, status: str = "ok") -> CallRecord:
    return CallRecord(key=f"{i}{model}", task_id=str(i), task=task, model=model, budget="no-think", prompt="p",
                      status=status, score=None if status != "ok" else score, cost_usd=cost, latency_s=1.0 + i,
                      output_tokens=10)


def test_summary_counts_failed_calls_as_wrong_and_prices_per_correct_answer() -> None:
    recs = [_rec(i, "a", "math" if i < 2 else "qa", 1.0, 0.002) for i in range(4)]
    recs += [_rec(i, "b", "math" if i < 2 else "qa", float(i % 2), 0.001) for i in range(3)]
    recs.append(_rec(3, "b", "qa", 0.0, 0.0, status="error"))
    rows = {(r.task, r.model): r for r in summarise(recs)}
    a, b = rows["all", "a"], rows["all", "b"]
    assert (a.n, a.accuracy, a.usd_per_1k, a.usd_per_correct) == (4, 1.0, pytest.approx(2.0), pytest.approx(0.002))
    assert (b.n, b.errors, b.accuracy) == (4, 1, 0.25)
    assert b.usd_per_correct == pytest.approx(0.003) and b.usd_per_1k == pytest.approx(0.75)
    assert rows["math", "b"].accuracy == 0.5 and rows["qa", "a"].n == 2
    assert a.p50_latency_s == pytest.approx(2.5) and b.p95_latency_s == pytest.approx(2.9)


def test_pareto_front_keeps_only_rows_no_cheaper_row_matches() -> None:
    recs = [_rec(0, "cheap", "t", 0.4, 0.001), _rec(0, "mid", "t", 0.3, 0.002), _rec(0, "dear", "t", 0.9, 0.01)]
    front = pareto_front(summarise(recs))
    assert [r.model for r in front] == ["cheap", "dear"]
