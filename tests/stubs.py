"""Deterministic stand-in estimators for tests of the routing rules (not shipped)."""

from __future__ import annotations

from calibroute.types import Classification, TaskClass

KEYWORDS = {
    "prove": TaskClass.REASONING,
    "solve": TaskClass.REASONING,
    "poem": TaskClass.OPEN_ENDED,
    "story": TaskClass.OPEN_ENDED,
    "sentiment": TaskClass.SIMPLE,
    "summarize": TaskClass.SIMPLE,
}


class KeywordClassifier:
    """Confident on a keyword; unsure (0.4) otherwise, so the policy's fallback fires."""

    def classify(self, text: str, context: str | None = None) -> Classification:
        lowered = text.lower()
        for word, cls in KEYWORDS.items():
            if word in lowered:
                return Classification(cls, 0.9, {c.value: (0.9 if c is cls else 0.1 / 3) for c in TaskClass})
        return Classification(TaskClass.SIMPLE, 0.4, {"SIMPLE": 0.4, "REASONING": 0.2, "OPEN_ENDED": 0.2, "GENERAL": 0.2})


class LengthDifficulty:
    """P(cheaper model suffices) falls with prompt length; 'hard' forces it low."""

    def p_weak_suffices(self, text: str) -> float:
        if "hard" in text.lower():
            return 0.05
        return max(0.0, min(1.0, 1.0 - len(text) / 2000))

    def threshold_for_share(self, strong_share: float) -> float:
        return strong_share
