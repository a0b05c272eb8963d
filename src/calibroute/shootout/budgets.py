"""The ``--budgets`` grammar: one label per setting, each turned into a portfolio ``Budget``.

``no-think`` (thinking off), a thinking budget in tokens (``512``, ``1k``, ``16k``), or an OpenAI
effort (``minimal``, ``low``, ``medium``, ``high``). Every setting also gets ``answer_tokens`` of
room for the visible answer, so ``1k`` means up to 1,024 thinking tokens plus the answer. The
label is what the outcomes file's ``budget`` column says, so ``calibrate budgets`` reads it back
as the setting (and its numeric budget) with no glue.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..budgets.budget_files import budget_tokens_of
from ..config import EFFORT_ORDER, Budget
from ..errors import InputError

# Output room an effort level may use on top of the answer (the API decides the real split).
EFFORT_ROOM = {"minimal": 0, "low": 2048, "medium": 8192, "high": 32768}


@dataclass(frozen=True)
class BudgetSetting:
    label: str
    budget: Budget
    budget_tokens: float | None  # the numeric thinking budget (0 = off); None for an effort level


def parse_budget(label: str, answer_tokens: int) -> BudgetSetting:
    text = label.strip().lower()
    if text in EFFORT_ORDER:
        thinking = text != "minimal"
        budget = Budget(max_output_tokens=answer_tokens + EFFORT_ROOM[text], thinking=thinking, effort=text)  # type: ignore[arg-type]
        return BudgetSetting(text, budget, None)
    tokens = budget_tokens_of(text)
    if tokens is None:
        raise InputError(f"--budgets: {label!r} is not no-think, a token budget (512, 1k, 16k) or an effort "
                         f"({', '.join(EFFORT_ORDER)})")
    if tokens == 0:
        return BudgetSetting(text, Budget(max_output_tokens=answer_tokens, thinking=False), 0.0)
    n = int(tokens)
    return BudgetSetting(text, Budget(max_output_tokens=n + answer_tokens, thinking=True, thinking_budget_tokens=n), float(n))


def parse_budgets(text: str, answer_tokens: int) -> list[BudgetSetting]:
    """Comma-separated labels, in the order given; each at most once."""
    labels = [part.strip() for part in text.split(",") if part.strip()]
    if not labels:
        raise InputError("--budgets: give at least one setting, e.g. no-think or no-think,1k,4k")
    settings = [parse_budget(label, answer_tokens) for label in labels]
    seen = [s.label for s in settings]
    if len(set(seen)) != len(seen):
        raise InputError(f"--budgets: a setting is listed twice ({text})")
    return settings
