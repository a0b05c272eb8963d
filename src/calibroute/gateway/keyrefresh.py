"""Reload the client keys in a worker thread, before the request path finds them stale.

Why: the ledger's key ring reloads itself (a database query) on the first request after
its refresh interval, on the event loop, stalling every request in flight. Reloading a
little earlier in a thread keeps that query off the loop; the ring's own check remains
the fallback if the thread is late. Ledgers without a key ring are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("calibroute.gateway")

EARLY = 0.8  # reload at this fraction of the ring's refresh interval


def key_reloader(ledger: object) -> tuple[Callable[[], None], float] | None:
    """(reload, period) when ``ledger`` has a key ring that refreshes on a timer, else None."""
    keys = getattr(ledger, "keys", None)
    reload = getattr(keys, "reload", None)
    refresh_s = getattr(keys, "refresh_s", None)
    if not callable(reload) or not isinstance(refresh_s, (int, float)) or refresh_s <= 0:
        return None  # no ring, or one that reloads on every call by configuration
    return reload, refresh_s * EARLY


async def keep_keys_fresh(reload: Callable[[], None], period_s: float) -> None:
    """Runs until cancelled; a failed reload is logged and retried next period."""
    await every(period_s, reload, "reload client keys")


async def every(period_s: float, job: Callable[[], object], what: str) -> None:
    """Run the blocking ``job`` in a worker thread every ``period_s`` until cancelled; a failure
    is logged and retried next period, a run in progress finishes before cancellation returns
    (so it never outlives the ledger it uses)."""
    while True:
        await asyncio.sleep(period_s)
        task = asyncio.ensure_future(asyncio.to_thread(job))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            raise
        except Exception:
            log.exception("could not %s", what)
