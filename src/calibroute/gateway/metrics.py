"""Prometheus text exposition for the gateway, without a client library.

Small on purpose: counters and histograms keyed by label tuples, rendered on GET /metrics.
Everything runs on the event loop thread, so no locks.
"""

from __future__ import annotations

import math
from bisect import bisect_left

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    return repr(float(v)) if not math.isinf(v) else "+Inf"


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, value: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labels, k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.labels, self.buckets = name, help, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # per-bucket counts, then +Inf count, then sum

    def observe(self, value: float, *labels: str) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        s[bisect_left(self.buckets, value)] += 1
        s[-1] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, s in sorted(self.series.items()):
            cumulative = 0.0
            for bound, count in zip((*self.buckets, math.inf), s[:-1]):
                cumulative += count
                le = 'le="' + _num(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labels, key, le)} {_num(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {_num(s[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {_num(cumulative)}")
        return lines


class GatewayMetrics:
    """The gateway's series. ``route`` is what the client asked for: auto, an alias, or 'direct'."""

    def __init__(self) -> None:
        self.requests = Counter("calibroute_requests_total", "Chat requests by outcome.", ("route", "class", "model", "status"))
        self.latency = Histogram("calibroute_request_duration_seconds", "Chat request latency (to the last byte).", ("route", "class", "model"))
        self.tokens = Counter("calibroute_tokens_total", "Tokens by kind (prompt, completion, reasoning).", ("kind", "route", "class", "model"))
        self.cost = Counter("calibroute_cost_usd_total", "Cost in USD at the portfolio's prices.", ("route", "class", "model"))
        self.fallbacks = Counter("calibroute_fallbacks_total", "Moves to the next model of a route.", ("from_model", "to_model"))
        self.backend_errors = Counter("calibroute_backend_errors_total", "Upstream failures by model and error code.", ("model", "code"))
        self.forced = Counter("calibroute_budget_forcing_total", "Think-budget interventions on the stream.", ("model", "action"))

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.latency, self.tokens, self.cost, self.fallbacks, self.backend_errors, self.forced):
            lines += metric.render()
        return "\n".join(lines) + "\n"
