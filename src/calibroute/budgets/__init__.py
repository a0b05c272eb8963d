"""Compute budgets: translation into each API's control, and enforcement on the stream."""

from __future__ import annotations

from .forcing import ForcingConfig, ThinkForcer, ThinkTagParser, estimate_tokens
from .translate import CLIENT_BUDGET_KEYS, ThinkLimits, Translation, effort_for, translate_budget

__all__ = [
    "CLIENT_BUDGET_KEYS",
    "ForcingConfig",
    "ThinkForcer",
    "ThinkLimits",
    "ThinkTagParser",
    "Translation",
    "effort_for",
    "estimate_tokens",
    "translate_budget",
]
