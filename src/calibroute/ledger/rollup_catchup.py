"""The first rollup of a big ledger, in the background, so it never holds up a start or a read.

A ledger written before the rollups existed (or by a gateway whose dashboard nobody opened) can
hold millions of rows never rolled up: 10 M rows took 183 s to roll up on SQLite, and that used
to be paid by the first dashboard read. ``CatchUp`` does it in a thread started with the gateway
(or ``calibroute dashboard``), chunk by chunk (``rollup.step``); meanwhile totals are read without
a refresh: exact from the rollups so far plus the rows past them, as long as those are few enough
to add live (``LIVE_LIMIT``), else the read answers 503 "rollup in progress" with the progress.

Several processes on one PostgreSQL ledger (gateway workers, replicas): one holds a session
advisory lock and rolls up; the others wait for it (and take over if it goes away). On SQLite
every process rolls up: chunks are applied once whoever groups them (rollup.py), only the
grouping is repeated.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, func, select, text

from ..errors import CalibrouteError
from . import rollup, tables

log = logging.getLogger("calibroute.ledger")

LIVE_LIMIT = 200_000  # rows past the rollups a read adds live while a catch-up runs (~0.2-0.5 s)
CATCH_UP_LOCK_KEY = 0x63616C6964  # "calid": the one process rolling up a PostgreSQL ledger
WAIT_S = 2.0  # how often a process that is not rolling up looks again


class RollupInProgress(CalibrouteError):
    """Totals cannot be read yet: too many rows are not rolled up to add them live."""

    http_status = 503
    error_type = "server_error"
    code = "rollup_in_progress"
    retry_after_s = 5.0


class CatchUp:
    """Rolls up ``engine``'s ledger in a daemon thread; ``gate`` tells each totals read how to read."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.state = "starting"  # starting | running | waiting (another process rolls up) | done | failed | stopped
        self.target_id = 0  # the newest settled row when the catch-up started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CatchUp:
        self._thread = threading.Thread(target=self._run, name="calibroute-rollup-catch-up", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to stop after its current chunk and wait for it (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "stopped")

    def _run(self) -> None:
        try:
            with self.engine.connect() as conn:
                self.target_id = rollup.settled_max_id(conn)
            if self.engine.dialect.name == "postgresql":
                self._run_alone()
            else:
                self._roll_up()
            self.state = "stopped" if self._stop.is_set() else "done"
        except Exception as exc:  # noqa: BLE001 - any failure: reads then refresh the rollups themselves again
            log.error("rollup catch-up of the ledger failed: %s", exc)
            self.state = "failed"

    def _roll_up(self) -> None:
        self.state = "running"
        while not self._stop.is_set() and rollup.step_in_process(self.engine):
            pass

    def _run_alone(self) -> None:
        """PostgreSQL: roll up while holding the catch-up lock; without it, wait for whoever has it."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            while not self._stop.is_set():
                if lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": CATCH_UP_LOCK_KEY}).scalar():
                    try:
                        self._roll_up()
                    finally:
                        lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CATCH_UP_LOCK_KEY})
                    return
                self.state = "waiting"
                if self._tail()[0] <= LIVE_LIMIT:
                    return
                self._stop.wait(WAIT_S)

    def _tail(self) -> tuple[int, int]:
        """(rows past the rollups, id the rollups reach)."""
        with self.engine.connect() as conn:
            done = rollup.last_id(conn)
            newest = int(conn.execute(select(func.max(tables.requests.c.id))).scalar() or 0)
        return max(0, newest - done), done

    def gate(self) -> bool:
        """Before a totals read: True to read with a refresh as usual (caught up), False to read
        without one (catching up, few rows past the rollups); raises ``RollupInProgress`` otherwise."""
        if self.finished:
            return True
        behind, done = self._tail()
        if behind <= LIVE_LIMIT:
            return False
        share = f"{100 * done / self.target_id:.0f} %" if self.target_id else "0 %"
        raise RollupInProgress(f"rollup in progress: {share} of the ledger's rows summed so far, {behind:,} to go; "
                               "totals appear when it is done (the last requests and latency are shown meanwhile)")

    def progress(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            done = rollup.last_id(conn)
        return {"state": self.state, "rolled_up_to_id": done, "target_id": self.target_id}
