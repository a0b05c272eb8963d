"""The two estimator seams the router depends on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Classification, TaskClass


@runtime_checkable
class Classifier(Protocol):
    """Maps prompt text to a task class with a calibrated confidence.

    ``context`` is what a follow-up turn follows (``conversation.Turn``); the router passes it only when
    there is one, so a classifier that reads the turn alone may omit the parameter.
    """

    def classify(self, text: str, context: str | None = None) -> Classification: ...


@runtime_checkable
class DifficultyEstimator(Protocol):
    """Estimates P(a cheaper model answers as well as a stronger one) from the prompt."""

    def p_weak_suffices(self, text: str) -> float: ...

    def threshold_for_share(self, strong_share: float) -> float:
        """The threshold below which escalation sends ``strong_share`` of typical traffic to the stronger model."""
        ...


def classify_turn(classifier: Classifier, text: str, context: str | None) -> Classification:
    """Classify a turn; its context goes only to classifiers that read one (a fresh request has none)."""
    return classifier.classify(text, context) if context else classifier.classify(text)


def uncertain(classes: Sequence[TaskClass]) -> Classification:
    """Uniform scores for text with nothing to go on (blank), so the router's low-confidence fallback applies."""
    share = 1.0 / len(classes)
    return Classification(TaskClass.GENERAL, share, {c.value: share for c in classes})
