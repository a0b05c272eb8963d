"""A background thread that batches ledger rows into inserts, so recording never waits on disk.

``submit`` only appends to a queue. The thread takes whatever has accumulated (up to
``batch_size`` rows) and hands it to ``flush_fn`` in one transaction. A failed batch is
retried with backoff; after ``max_attempts`` it is dropped and counted in ``dropped``
(logged), so a dead database cannot grow memory without bound. ``close`` drains the
queue, then stops the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from .base import LedgerRow

log = logging.getLogger("calibroute.ledger")
_STOP = object()


class BatchWriter:
    def __init__(
        self,
        flush_fn: Callable[[list[LedgerRow]], None],
        *,
        batch_size: int = 500,
        max_attempts: int = 5,
        retry_delay_s: float = 0.2,
        max_queue: int = 1_000_000,
    ) -> None:
        self._flush_fn = flush_fn
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.written = 0
        self.dropped = 0

    def submit(self, row: LedgerRow) -> bool:
        """Queue one row without blocking; False if the writer is closed or the queue is full."""
        with self._lock:  # uncontended in practice: a check and a put, no I/O
            if self._closed:
                self.dropped += 1
                log.warning("ledger closed: dropped row %s", row.request_id)
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="calibroute-ledger-writer", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1
                log.warning("ledger queue full: dropped row %s", row.request_id)
                return False
        return True

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[LedgerRow] = []
            if item is _STOP:
                stopping = True
            else:
                batch.append(item)  # type: ignore[arg-type]
            while len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:  # nothing follows it: close() holds the lock while putting it
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            if batch:
                self._write(batch)

    def _write(self, batch: list[LedgerRow]) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._flush_fn(batch)
            except Exception as exc:  # any database failure: retry, then count the loss
                if attempt == self._max_attempts:
                    self.dropped += len(batch)
                    log.error("ledger write failed %d times, dropped %d rows: %s", attempt, len(batch), exc)
                    return
                log.warning("ledger write failed (attempt %d): %s", attempt, exc)
                time.sleep(self._retry_delay_s * 2 ** (attempt - 1))
            else:
                self.written += len(batch)
                return

    def close(self, timeout_s: float | None = None) -> None:
        """Flush everything queued and stop the thread; idempotent."""
        with self._lock:  # every row submitted before this is ahead of the stop mark
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout_s)
