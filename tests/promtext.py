"""Read one sample out of a Prometheus text exposition (label order does not matter)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of series ``name`` with exactly these labels, or None if absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def total(text: str, name: str) -> float:
    """The sum of every series of ``name``."""
    return sum(float(s.value) for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)
