"""Spend limits that hold under concurrency: reserve a request's upper-bound cost before the
backend call (``ledger/reservations.py``), off the event loop.

The upper bound is the router's: the estimated prompt tokens plus the budget's
``max_output_tokens``, priced at the dearest model the request may reach (its model or a
fallback). The reservation is released when the request's ledger row is written, with the
actual cost, so a key's spend plus its holds never under-counts; overshoot past the limit
is at most what a request's actual cost exceeds its estimate by. Only keys with a spend
limit pay for the database round trip.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..config import Portfolio
from ..errors import CalibrouteError
from ..ledger.reservations import expire_reservations, reserve
from ..types import Decision
from .errors import SpendLimitExceeded
from .keyrefresh import every

log = logging.getLogger("calibroute.gateway")

class LedgerUnavailable(CalibrouteError):
    """The spend limit cannot be checked: refuse (503) rather than serve past a limit."""

    http_status = 503
    error_type = "server_error"
    code = "ledger_unavailable"
    retry_after_s = 1.0


def upper_bound_usd(portfolio: Portfolio, decision: Decision) -> float:
    """What the request can cost at most, as far as the router knows before the call."""
    out = decision.budget.max_output_tokens
    return max(portfolio.model(m).cost_usd(decision.input_tokens_est, out) for m in [decision.model, *decision.fallbacks])


class SpendGuard:
    """Reserves spend for keys with a limit; does nothing for ledgers without a database."""

    def __init__(self, ledger: Any, portfolio: Portfolio, ttl_s: float) -> None:
        self.engine = getattr(ledger, "engine", None)
        self.keys = getattr(ledger, "keys", None)
        self.portfolio, self.ttl_s = portfolio, ttl_s

    @property
    def enabled(self) -> bool:
        return self.engine is not None and self.keys is not None

    async def reserve(self, key_id: str | None, request_id: str, decision: Decision) -> None:
        """Hold the request's upper-bound cost, or raise SpendLimitExceeded (429)."""
        if key_id is None or not self.enabled:
            return
        key = self.keys.get(key_id)  # type: ignore[union-attr]
        if key is None or key.spend_limit_usd is None:
            return
        amount = upper_bound_usd(self.portfolio, decision)
        try:
            refused = await asyncio.to_thread(reserve, self.engine, key_id, request_id, amount, self.ttl_s)  # type: ignore[arg-type]
        except SQLAlchemyError as exc:
            log.error("spend reservation failed for %s: %s", key_id, str(exc).splitlines()[0])
            raise LedgerUnavailable("cannot check this API key's spend limit: the ledger database is unavailable") from None
        if refused is not None:
            exc = SpendLimitExceeded(
                f"API key {key.name!r} has ${refused.left_usd:.4f} left of its ${refused.limit_usd:.2f} spend limit "
                f"(${refused.spent_usd:.4f} spent, ${refused.reserved_usd:.4f} held by requests in flight); "
                f"this request may cost up to ${amount:.4f}")
            exc.key_id = key_id
            raise exc

    async def expire_periodically(self) -> None:
        """Release reservations left by processes that died; runs until cancelled."""
        await every(max(1.0, min(60.0, self.ttl_s / 4)), lambda: expire_reservations(self.engine), "expire spend reservations")  # type: ignore[arg-type]
