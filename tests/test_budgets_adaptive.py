"""The difficulty-adaptive budget: bounds, monotonicity, thinking switch, effort steps, bad input."""

from __future__ import annotations

import pytest

from calibroute.budgets.adaptive import adaptive_budget
from calibroute.config import Budget
from calibroute.errors import InputError

OFF = Budget(max_output_tokens=512, thinking=False)
BIG = Budget(max_output_tokens=8192, thinking=True, thinking_budget_tokens=4096)


def test_easy_gets_the_low_bound_and_hard_the_high_bound() -> None:
    assert adaptive_budget(OFF, BIG, 1.0) == OFF
    assert adaptive_budget(OFF, BIG, 0.0) == BIG


def test_budget_grows_monotonically_as_requests_get_harder() -> None:
    tokens = [adaptive_budget(OFF, BIG, 1 - h / 20).thinking_budget_tokens or 0 for h in range(21)]
    caps = [adaptive_budget(OFF, BIG, 1 - h / 20).max_output_tokens for h in range(21)]
    assert tokens == sorted(tokens) and caps == sorted(caps)
    assert tokens[10] == 2048 and caps[10] == 4352


def test_thinking_turns_off_when_the_scaled_budget_rounds_to_zero() -> None:
    budget = adaptive_budget(OFF, BIG, 0.995)
    assert not budget.thinking and budget.thinking_budget_tokens is None


def test_uncapped_thinking_bound_switches_on_half_way() -> None:
    natural = Budget(max_output_tokens=4096, thinking=True)
    assert not adaptive_budget(OFF, natural, 0.6).thinking
    assert adaptive_budget(OFF, natural, 0.4).thinking


def test_effort_steps_through_the_effort_order() -> None:
    low = Budget(max_output_tokens=2048, thinking=True, effort="low")
    high = Budget(max_output_tokens=8192, thinking=True, effort="high")
    assert [adaptive_budget(low, high, d).effort for d in (1.0, 0.5, 0.0)] == ["low", "medium", "high"]


@pytest.mark.parametrize("difficulty", [-0.1, 1.5, float("nan")])
def test_difficulty_outside_zero_one_is_an_input_error(difficulty: float) -> None:
    with pytest.raises(InputError, match="difficulty must be a probability"):
        adaptive_budget(OFF, BIG, difficulty)


def test_bounds_in_the_wrong_order_are_an_input_error() -> None:
    with pytest.raises(InputError, match="budget bounds"):
        adaptive_budget(BIG, OFF, 0.5)
