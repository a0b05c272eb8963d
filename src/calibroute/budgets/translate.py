"""One meaning of 'compute budget' -> each API's own control.

| control            | request parameters                                                        |
|--------------------|---------------------------------------------------------------------------|
| none               | max_tokens                                                                |
| reasoning_effort   | max_completion_tokens, reasoning_effort                                   |
| budget_tokens      | max_tokens, thinking={type: enabled, budget_tokens: B} (1024 <= B < max)  |
| enable_thinking    | max_tokens, chat_template_kwargs.enable_thinking (+ vLLM thinking_token_budget) |
| think_tags         | max_tokens; the thinking budget is enforced on the stream (budgets.forcing) |

The client's own max_tokens / max_completion_tokens / reasoning_effort are caps: they
lower the routed budget, never raise it (``policy.cap_budget``), and are replaced in the
upstream request by the translated parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Budget, ReasoningControl
from ..policy import cap_budget
from ..types import Hints

ANTHROPIC_MIN_THINKING = 1024  # Anthropic rejects budget_tokens below this, and requires budget < max_tokens
EFFORT_WHEN_OFF = "low"  # the lowest effort every reasoning_effort server accepts ("minimal" is not universal)
# Client keys that carry a budget; the translation replaces them.
CLIENT_BUDGET_KEYS = ("max_tokens", "max_completion_tokens", "reasoning_effort", "thinking", "thinking_token_budget")


@dataclass(frozen=True)
class ThinkLimits:
    """What the stream-side enforcer must do for a model that thinks in <think> tags.

    ``max_tokens`` None means no cap (thinking is only counted); 0 means no thinking at all.
    ``min_tokens`` > 0 extends thinking that ends earlier (s1's "Wait").
    """

    max_tokens: int | None
    min_tokens: int = 0


@dataclass(frozen=True)
class Translation:
    """Upstream request parameters for one budget on one model."""

    params: dict[str, Any]
    think: ThinkLimits | None = None  # set when the gateway enforces thinking on the stream
    budget: Budget | None = None  # the budget after client caps
    notes: list[str] = field(default_factory=list)  # deviations, e.g. a budget raised to an API minimum

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The client's body with its budget keys replaced by ours (chat_template_kwargs merged)."""
        out = {k: v for k, v in body.items() if k not in CLIENT_BUDGET_KEYS}
        for key, value in self.params.items():
            if key == "chat_template_kwargs" and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return out


def effort_for(budget: Budget) -> str:
    """The OpenAI effort level for a budget: its own, else one derived from the thinking budget."""
    if not budget.thinking:
        return budget.effort if budget.effort == "minimal" else EFFORT_WHEN_OFF
    if budget.effort:
        return budget.effort
    tb = budget.thinking_budget_tokens
    if tb is None:
        return "medium"
    return "low" if tb <= 1024 else "medium" if tb <= 8192 else "high"


def translate_budget(
    budget: Budget,
    control: ReasoningControl,
    caps: Hints | None = None,
    *,
    native_thinking_budget: bool = False,
    min_think_tokens: int = 0,
) -> Translation:
    """Request parameters that give ``control``'s API the meaning of ``budget``.

    ``caps`` are the client's own limits (max tokens, effort); ``native_thinking_budget``
    says an enable_thinking server accepts vLLM's per-request ``thinking_token_budget``;
    ``min_think_tokens`` asks think_tags models to think at least that long.
    """
    if caps is not None:
        budget = cap_budget(budget, caps.max_output_tokens, caps.effort, caps.thinking_tokens)
    n = budget.max_output_tokens
    tb = budget.thinking_budget_tokens if budget.thinking else 0
    notes: list[str] = []
    if control is ReasoningControl.NONE:
        return Translation({"max_tokens": n}, budget=budget)
    if control is ReasoningControl.REASONING_EFFORT:
        return Translation({"max_completion_tokens": n, "reasoning_effort": effort_for(budget)}, budget=budget)
    if control is ReasoningControl.BUDGET_TOKENS:
        if not budget.thinking or n <= ANTHROPIC_MIN_THINKING:
            if budget.thinking:
                notes.append(f"thinking off: max tokens {n} leave no room for the API minimum {ANTHROPIC_MIN_THINKING}")
            return Translation({"max_tokens": n, "thinking": {"type": "disabled"}}, budget=budget, notes=notes)
        want = budget.thinking_budget_tokens if budget.thinking_budget_tokens is not None else n // 2
        granted = min(max(want, ANTHROPIC_MIN_THINKING), n - 1)
        if granted != want:
            notes.append(f"thinking budget {want} -> {granted} (API requires {ANTHROPIC_MIN_THINKING} <= budget < max tokens)")
        return Translation(
            {"max_tokens": n, "thinking": {"type": "enabled", "budget_tokens": granted}}, budget=budget, notes=notes
        )
    if control is ReasoningControl.ENABLE_THINKING:
        params: dict[str, Any] = {"max_tokens": n, "chat_template_kwargs": {"enable_thinking": budget.thinking}}
        if native_thinking_budget and budget.thinking and tb is not None:
            params["thinking_token_budget"] = tb
        return Translation(params, budget=budget)
    if control is ReasoningControl.THINK_TAGS:
        floor = min(min_think_tokens, tb) if tb is not None else min_think_tokens
        limits = ThinkLimits(max_tokens=tb, min_tokens=floor if budget.thinking else 0)
        return Translation({"max_tokens": n}, think=limits, budget=budget)
    raise AssertionError(f"unhandled reasoning control {control!r}")  # pragma: no cover - enum is exhaustive
