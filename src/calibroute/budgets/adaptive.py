"""A difficulty-adaptive budget: scale a request's budget between a class's bounds by its difficulty.

``difficulty`` is the router's estimate P(the cheaper model answers as well as the stronger one),
``calibroute.classify.load_difficulty().p_weak_suffices(text)``: 1 means easy, 0 hard. The budget
moves linearly from ``bounds_low`` (easy) to ``bounds_high`` (hard) in each field:

* thinking budget tokens (thinking off counts as 0 tokens), rounded to ``step`` tokens; a result of
  0 turns thinking off. A bound that thinks without a token budget switches on at half-way.
* reasoning effort, by its position in minimal < low < medium < high.
* ``max_output_tokens``, always kept above the thinking budget.

Whether this beats a fixed per-class budget at equal mean tokens is measured in
``bench/budgets_adaptive.py`` (docs/bench-budgets.md).
"""

from __future__ import annotations

import math

from ..config import EFFORT_ORDER, Budget
from ..errors import InputError


def _think_tokens(budget: Budget) -> int | None:
    """Thinking tokens a budget allows: 0 when thinking is off, None when on without a cap."""
    if not budget.thinking:
        return 0
    return budget.thinking_budget_tokens


def check_bounds(low: Budget, high: Budget) -> None:
    """Raise InputError unless ``low`` allows no more than ``high`` in every field."""
    if low.max_output_tokens > high.max_output_tokens:
        raise InputError(f"budget bounds: low max_output_tokens {low.max_output_tokens} > high {high.max_output_tokens}")
    lo_t, hi_t = _think_tokens(low), _think_tokens(high)
    if lo_t is not None and hi_t is not None and lo_t > hi_t:
        raise InputError(f"budget bounds: low thinking budget {lo_t} > high {hi_t}")
    if low.thinking and not high.thinking:
        raise InputError("budget bounds: low thinks but high does not")
    if low.effort and high.effort and EFFORT_ORDER.index(low.effort) > EFFORT_ORDER.index(high.effort):
        raise InputError(f"budget bounds: low effort {low.effort} > high effort {high.effort}")


def adaptive_budget(bounds_low: Budget, bounds_high: Budget, difficulty: float, step: int = 64) -> Budget:
    """The budget for a request whose P(cheaper model suffices) is ``difficulty`` (1 easy .. 0 hard)."""
    if not isinstance(difficulty, (int, float)) or math.isnan(difficulty) or not 0.0 <= difficulty <= 1.0:
        raise InputError(f"difficulty must be a probability in [0, 1], got {difficulty!r}")
    if step < 1:
        raise InputError(f"step must be a positive number of tokens, got {step}")
    check_bounds(bounds_low, bounds_high)
    h = 1.0 - float(difficulty)  # hardness: 0 -> low bound, 1 -> high bound

    lo_t, hi_t = _think_tokens(bounds_low), _think_tokens(bounds_high)
    think_tokens: int | None
    if lo_t is not None and hi_t is not None:
        think_tokens = int(round((lo_t + h * (hi_t - lo_t)) / step) * step)
        think_tokens = min(max(think_tokens, lo_t), hi_t)
        thinking = think_tokens > 0
    else:  # at least one bound thinks without a cap: switch between the bounds half-way
        chosen = bounds_high if h >= 0.5 else bounds_low
        thinking, think_tokens = chosen.thinking, _think_tokens(chosen)

    effort = None
    if thinking:
        efforts = [e for e in (bounds_low.effort, bounds_high.effort) if e]
        if len(efforts) == 2:
            i_lo, i_hi = EFFORT_ORDER.index(efforts[0]), EFFORT_ORDER.index(efforts[1])
            effort = EFFORT_ORDER[int(math.floor(i_lo + h * (i_hi - i_lo) + 0.5))]
        elif efforts:
            effort = efforts[0]

    max_out = int(round(bounds_low.max_output_tokens + h * (bounds_high.max_output_tokens - bounds_low.max_output_tokens)))
    if thinking and think_tokens:
        max_out = max(max_out, think_tokens + 1)
    return Budget(
        max_output_tokens=max_out,
        thinking=thinking,
        thinking_budget_tokens=think_tokens if thinking and think_tokens else None,
        effort=effort,  # type: ignore[arg-type]
    )
