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
    """Closed -> open after ``failures`` consecutive failures; after ``cooldown_s``, half-open:
    exactly one trial request goes through while the others are kept out; its success
    closes the circuit, its failure re-opens it for another cool-down."""

    failures: int
    cooldown_s: float
    consecutive: int = 0
    open_until: float = 0.0
    trial: object | None = None  # who holds the half-open trial, while it is in flight

    def is_open(self, now: float) -> bool:
        """Keeping requests out: cooling down, or a trial in flight."""
        return self.consecutive >= self.failures and (now < self.open_until or self.trial is not None)

    def admit(self, now: float, who: object) -> bool:
        """May ``who`` call the model now? A request admitted half-open holds the trial."""
        if self.consecutive < self.failures:
            return True
        if self.is_open(now):
            return False
        self.trial = who
        return True

    def record_success(self) -> None:
        self.consecutive, self.open_until, self.trial = 0, 0.0, None

    def record_failure(self, now: float, who: object) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.open_until = now + self.cooldown_s  # a failed half-open trial re-opens it
        self.release(who)

    def release(self, who: object) -> None:
        """The trial ended without a verdict (cancelled, or the request itself refused): let another try."""
        if self.trial is who:
            self.trial = None


@dataclass
class Attempted:
    """What the fallback loop did: models tried in order, how many retries, the last failure seen."""

    path: list[str] = field(default_factory=list)
    retries: int = 0
    last_error: str | None = None


class Fallback:
    def __init__(self, metrics: GatewayMetrics, *, retries: int, backoff_s: float, backoff_max_s: float,
                 breaker_failures: int, breaker_cooldown_s: float, retry_after_max_s: float) -> None:
        self.metrics = metrics
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self._breaker_args = (breaker_failures, breaker_cooldown_s)
        self.breakers: dict[str, Breaker] = {}

    def breaker(self, model: str) -> Breaker:
        if (b := self.breakers.get(model)) is None:
            b = self.breakers[model] = Breaker(*self._breaker_args)
        return b

    def delay(self, retry: int, exc: BackendError) -> float | None:
        """Seconds before retrying the same model; None: do not (it asked for a longer pause than
        ``retry_after_max_s`` with Retry-After, so the next model is the better bet)."""
        base: float = min(self.backoff_max_s, self.backoff_s * (2.0**retry))
        jittered = base * (0.5 + random.random() / 2)
        if exc.retry_after_s is None:
            return jittered
        return max(jittered, exc.retry_after_s) if exc.retry_after_s <= self.retry_after_max_s else None

    async def run(self, models: list[str], attempt: Callable[[str], Awaitable[T]], tried: Attempted) -> tuple[str, T]:
        """The first model (in order) whose ``attempt`` succeeds; raises the last retryable error."""
        last: BackendError | None = None
        for model in models:
            breaker = self.breaker(model)
            if not breaker.admit(time.monotonic(), tried):
                continue
            if tried.path:
                self.metrics.fallbacks.inc(tried.path[-1], model)
            tried.path.append(model)
            try:
                for retry in range(self.retries + 1):
                    try:
                        result = await attempt(model)
                    except BackendError as exc:
                        self.metrics.backend_errors.inc(model, exc.code or "backend_error")
                        if not exc.retryable:
                            raise
                        breaker.record_failure(time.monotonic(), tried)
                        last, tried.last_error = exc, str(exc)
                        pause = self.delay(retry, exc)
                        if pause is not None and retry < self.retries and breaker.admit(time.monotonic(), tried):
                            tried.retries += 1
                            await anyio.sleep(pause)
                            continue
                        break
                    breaker.record_success()
                    return model, result
            finally:
                breaker.release(tried)  # cancelled, or refused by the upstream: the trial (if any) is over
        if last is None:
            raise BackendUnavailable(f"every model of the route is cooling down after failures: {', '.join(models)}")
        raise last
