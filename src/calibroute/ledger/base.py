"""What the gateway records per request, and the seam it records through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class LedgerRow:
    """One request, whatever its outcome: success, client error, backend failure."""

    request_id: str
    status: str  # "ok", "error", "client_error", "rejected"
    http_status: int
    task_class: str | None = None
    model: str | None = None  # the model that answered (or last tried)
    route_rule: str | None = None
    budget: str | None = None  # Budget.describe()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0  # the same tokens on the portfolio's largest model
    latency_ms: float = 0.0
    fallback_path: list[str] = field(default_factory=list)  # models tried, in order
    stream: bool = False
    api_key_id: str | None = None
    error: str | None = None
    prompt: str | None = None  # only when prompt logging is enabled
    confidence: float | None = None  # the classifier's confidence in task_class
    reason: str | None = None  # the decision's one-sentence reason
    cached_tokens: int = 0  # of prompt_tokens, read from the backend's prompt cache (priced at the cached price)
    cache_saved_usd: float = 0.0  # what those cached tokens saved against the model's full input price
    affinity_saved_usd: float = 0.0  # a turn affinity kept on its model: the routed model's cost minus this (may be < 0)
    created_at: datetime = field(default_factory=utcnow)


class LedgerSink(Protocol):
    """Non-blocking record; ``close`` flushes everything queued."""

    def record(self, row: LedgerRow) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class JournaledSink(LedgerSink, Protocol):
    """A sink that can make a row durable at once and take it over later (in groups)."""

    def accept(self, row: LedgerRow) -> None: ...

    def enqueue(self, rows: list[LedgerRow]) -> None: ...
