"""Reload the client keys in a worker thread, before the request path finds them stale.

Why: the ledger's key ring reloads itself (a database query) on the first request after
its refresh interval, on the event loop, stalling every request in flight. Reloading a
little earlier in a thread keeps that query off the loop; the ring's own check remains
the fallback if the thread is late. Ledgers without a key ring are left alone.

On PostgreSQL, key changes (revoke, update) also ``NOTIFY calibroute_keys`` when they
commit (``ledger/keys.py``); ``KeyListener`` holds one connection that LISTENs and reloads
at once, so a revoked key stops working on every replica within about a second (measured
in tests/test_replicas.py) instead of after the refresh interval. If that connection
drops, the listener reconnects (reloading once, to catch what it missed) and the
periodic reload keeps running underneath. SQLite has no notifications: periodic only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from ..ledger.keys import KEYS_CHANNEL

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


class KeyListener:
    """A daemon thread that reloads the key ring whenever a key changes in PostgreSQL."""

    def __init__(self, conninfo: str, reload: Callable[[], None], *, poll_s: float = 0.5) -> None:
        self.conninfo, self.reload, self.poll_s = conninfo, reload, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calibroute-key-listener", daemon=True)
        self.listening = threading.Event()  # set while LISTEN is active (tests wait for it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {KEYS_CHANNEL}")
                    self.listening.set()
                    self.reload()  # whatever changed while nobody listened
                    while not self._stop.is_set():
                        if any(True for _ in conn.notifies(timeout=self.poll_s)):
                            self.reload()  # one reload for a burst of changes
            except Exception as exc:  # the server went away: periodic reloads cover the gap
                self.listening.clear()
                log.warning("key change listener: %s; reconnecting", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self._stop.wait(1.0)
        self.listening.clear()


def key_listener(ledger: object) -> KeyListener | None:
    """A listener for a PostgreSQL ledger with a key ring, else None."""
    engine = getattr(ledger, "engine", None)
    reload = getattr(getattr(ledger, "keys", None), "reload", None)
    if engine is None or not callable(reload) or engine.dialect.name != "postgresql":
        return None
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return KeyListener(conninfo, reload)
