"""Retries with backoff, then the next model of the route; a circuit breaker per model.

Only failures before the first byte reach the client invisibly, so only those are retried:
connect errors, 5xx, 429 and timeouts (``BackendError.retryable``). A request the upstream
rejects (other 4xx) is the client's to fix and is returned at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from ..errors import BackendError, BackendUnavailable
from .metrics import GatewayMetrics

T = TypeVar("T")


@dataclass
class Breaker:
    """Closed -> open after ``failures`` consecutive failures; half-open (one trial) after ``cooldown_s``."""

    failures: int
    cooldown_s: float
    consecutive: int = 0
    open_until: float = 0.0

    def available(self, now: float) -> bool:
        return self.consecutive < self.failures or now >= self.open_until

    def record_success(self) -> None:
        self.consecutive, self.open_until = 0, 0.0

    def record_failure(self, now: float) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.open_until = now + self.cooldown_s  # a failed half-open trial re-opens it


@dataclass
class Attempted:
    """What the fallback loop did: models tried in order, and how many retries."""

    path: list[str] = field(default_factory=list)
    retries: int = 0


class Fallback:
    def __init__(self, metrics: GatewayMetrics, *, retries: int, backoff_s: float, backoff_max_s: float,
                 breaker_failures: int, breaker_cooldown_s: float) -> None:
        self.metrics = metrics
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s
        self._breaker_args = (breaker_failures, breaker_cooldown_s)
        self.breakers: dict[str, Breaker] = {}

    def breaker(self, model: str) -> Breaker:
        if (b := self.breakers.get(model)) is None:
            b = self.breakers[model] = Breaker(*self._breaker_args)
        return b

    def delay(self, retry: int) -> float:
        base: float = min(self.backoff_max_s, self.backoff_s * (2.0**retry))
        return base * (0.5 + random.random() / 2)

    async def run(self, models: list[str], attempt: Callable[[str], Awaitable[T]], tried: Attempted) -> tuple[str, T]:
        """The first model (in order) whose ``attempt`` succeeds; raises the last retryable error."""
        last: BackendError | None = None
        for model in models:
            breaker = self.breaker(model)
            if not breaker.available(time.monotonic()):
                continue
            if tried.path:
                self.metrics.fallbacks.inc(tried.path[-1], model)
            tried.path.append(model)
            for retry in range(self.retries + 1):
                try:
                    result = await attempt(model)
                except BackendError as exc:
                    self.metrics.backend_errors.inc(model, exc.code or "backend_error")
                    if not exc.retryable:
                        raise
                    breaker.record_failure(time.monotonic())
                    last = exc
                    if retry < self.retries and breaker.available(time.monotonic()):
                        tried.retries += 1
                        await anyio.sleep(self.delay(retry))
                        continue
                    break
                breaker.record_success()
                return model, result
        if last is None:
            raise BackendUnavailable(f"every model of the route is cooling down after failures: {', '.join(models)}")
        raise last
