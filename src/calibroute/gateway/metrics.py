"""The gateway's Prometheus series, through ``prometheus_client``.

Why the library: with ``calibroute serve --workers N`` each worker is a process, and a
scrape reaches one of them; ``prometheus_client``'s multiprocess mode (each process
writes its values to files under ``$PROMETHEUS_MULTIPROC_DIR``, a scrape sums them) makes
``/metrics`` the whole replica's. ``serve`` sets that directory up when workers > 1; a
single process keeps its values in memory. Each app has its own registry, so several
gateways in one process (tests) do not collide.

The thin ``Counter`` / ``Histogram`` wrappers keep the call sites short
(``m.requests.inc(route, cls, model, status)``) and cache each label set's child, so
the request path does a dict lookup and an add per series.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Histogram as _Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from .settings import MULTIPROC_ENV

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

prometheus_client.disable_created_metrics()  # no *_created series: counters read as before


class Counter:
    def __init__(self, registry: CollectorRegistry, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.metric = _Counter(name, help, labels, registry=registry)
        self._children: dict[tuple[str, ...], Any] = {}

    def inc(self, *labels: str, value: float = 1.0) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        child.inc(value)


class Histogram:
    def __init__(self, registry: CollectorRegistry, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.metric = _Histogram(name, help, labels, registry=registry, buckets=LATENCY_BUCKETS)
        self._children: dict[tuple[str, ...], Any] = {}

    def observe(self, value: float, *labels: str) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        child.observe(value)


class GatewayMetrics:
    """The gateway's series. ``route`` is what the client asked for: auto, an alias, or 'direct'."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(r, "calibroute_requests_total", "Chat requests by outcome.", ("route", "class", "model", "status"))
        self.latency = Histogram(r, "calibroute_request_duration_seconds", "Chat request latency (to the last byte).", ("route", "class", "model"))
        self.tokens = Counter(r, "calibroute_tokens_total", "Tokens by kind (prompt, completion, reasoning, cached: prompt tokens read from the prompt cache).", ("kind", "route", "class", "model"))
        self.cost = Counter(r, "calibroute_cost_usd_total", "Cost in USD at the portfolio's prices.", ("route", "class", "model"))
        self.fallbacks = Counter(r, "calibroute_fallbacks_total", "Moves to the next model of a route.", ("from_model", "to_model"))
        self.backend_errors = Counter(r, "calibroute_backend_errors_total", "Upstream failures by model and error code.", ("model", "code"))
        self.forced = Counter(r, "calibroute_budget_forcing_total", "Think-budget interventions on the stream.", ("model", "action"))

    def render(self) -> str:
        """This process's values, or every worker's summed when in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged).decode()
        return generate_latest(self.registry).decode()
