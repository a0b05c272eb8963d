"""Value types that cross module boundaries: task classes, classifications, decisions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .config import Budget


class TaskClass(str, Enum):
    """The four kinds of request calibroute budgets differently."""

    SIMPLE = "SIMPLE"  # FAQ, classification, extraction, summarization, rewriting
    REASONING = "REASONING"  # math, logic, code: a definitive answer that thinking helps
    OPEN_ENDED = "OPEN_ENDED"  # creative writing, brainstorming, advice: overthinking hurts
    GENERAL = "GENERAL"  # everything else, and the safe route when unsure

    @classmethod
    def parse(cls, value: str) -> "TaskClass":
        try:
            return cls(value.strip().upper().replace("-", "_"))
        except ValueError:
            names = ", ".join(c.value for c in cls)
            from .errors import InputError

            raise InputError(f"unknown task class {value!r}; expected one of {names}") from None


@dataclass(frozen=True)
class Classification:
    """A classifier's verdict: the class, its calibrated probability, and all class scores."""

    task_class: TaskClass
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExampleMatch:
    """The operator's labelled example closest to a prompt, at or above ``routing.example_min_similarity``."""

    task_class: TaskClass
    similarity: float  # cosine similarity of the hashed n-gram features, in (0, 1]
    example: str
    min_similarity: float


@dataclass(frozen=True)
class Hints:
    """Explicit caller choices that override or cap the routed decision."""

    model: str | None = None  # a configured model name: pass through, no routing
    task_class: TaskClass | None = None  # e.g. from a `domain` hint: skip the classifier
    budget: Budget | None = None  # an explicit budget replaces the route's
    max_output_tokens: int | None = None  # a client cap on output tokens
    effort: str | None = None  # a client cap on reasoning effort
    thinking_tokens: int | None = None  # a client cap on thinking tokens (Anthropic's budget_tokens); 0: no thinking


@dataclass(frozen=True)
class Decision:
    """What the router chose and why; deterministic for the same prompt, config and hints."""

    task_class: TaskClass
    confidence: float
    difficulty: float | None  # P(the route's cheaper model answers as well as the stronger one)
    model: str
    fallbacks: list[str]
    budget: Budget
    estimated_cost_usd: float
    rule: str  # which rule fired: classified, low_confidence, escalated, explicit_model, hint_class, example_match
    reason: str  # one human sentence
    scores: dict[str, float] = field(default_factory=dict)
    input_tokens_est: int = 0
    rules: list[str] = field(default_factory=list)  # every rule that fired, in order; ``rule`` is the last

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task_class"] = self.task_class.value
        data["budget"] = self.budget.model_dump(exclude_none=True)
        return data


DOMAIN_CLASSES: dict[str, TaskClass] = {
    **{d: TaskClass.SIMPLE for d in ("faq", "classification", "extraction", "summarization", "rewriting", "translation")},
    **{d: TaskClass.REASONING for d in ("math", "logic", "code", "coding", "reasoning", "science")},
    **{d: TaskClass.OPEN_ENDED for d in ("creative", "creative_writing", "writing", "brainstorming", "advice", "roleplay")},
    "general": TaskClass.GENERAL,
}


def class_from_hint(value: str) -> TaskClass:
    """A task class from a class name or a domain hint such as ``math`` or ``creative_writing``."""
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    if key in DOMAIN_CLASSES:
        return DOMAIN_CLASSES[key]
    try:
        return TaskClass(key.upper())
    except ValueError:
        from .errors import InputError

        known = ", ".join([c.value for c in TaskClass] + sorted(DOMAIN_CLASSES))
        raise InputError(f"unknown domain or class hint {value!r}; expected one of {known}") from None
