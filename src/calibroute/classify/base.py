"""The two estimator seams the router depends on."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..types import Classification


@runtime_checkable
class Classifier(Protocol):
    """Maps prompt text to a task class with a calibrated confidence."""

    def classify(self, text: str) -> Classification: ...


@runtime_checkable
class DifficultyEstimator(Protocol):
    """Estimates P(a cheaper model answers as well as a stronger one) from the prompt."""

    def p_weak_suffices(self, text: str) -> float: ...

    def threshold_for_share(self, strong_share: float) -> float:
        """The threshold below which escalation sends ``strong_share`` of typical traffic to the stronger model."""
        ...
