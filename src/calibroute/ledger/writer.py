"""A background thread that batches ledger rows into inserts, so recording never waits on disk.

``submit`` only appends to a queue. The thread takes whatever has accumulated (up to
``batch_size`` rows) and hands it to ``flush_fn`` in one transaction. What happens when
that fails depends on why:

- the database refused the *data* (an encoding error, a value out of range, a constraint):
  retrying cannot help, and one bad row must not cost its neighbours, so the batch is
  written again row by row; a row that still fails is quarantined (``on_quarantine``:
  kept in the journal's dead-letter file, counted in ``quarantined``, logged);
- anything else (database down or locked, connection lost) is retried with backoff; after
  ``max_attempts`` the batch is given up (``on_defer``, counted in ``dropped``, logged),
  so a dead database cannot grow memory without bound. With a journal the rows stay on
  disk and are written at the next start.

``close`` drains the queue, then stops the thread. The thread also calls ``on_tick`` at
least every ``tick_s`` (the journal's fsync).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, NotSupportedError, ProgrammingError, StatementError

from .base import LedgerRow

log = logging.getLogger("calibroute.ledger")
_STOP = object()

Rows = list[LedgerRow]


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves were refused (no retry helps), not the database unavailable."""
    if isinstance(exc, DBAPIError):  # OperationalError, InterfaceError...: the server, not the data
        return isinstance(exc, (DataError, IntegrityError, ProgrammingError, NotSupportedError))
    return isinstance(exc, (StatementError, ValueError, TypeError))  # e.g. a string the driver cannot encode


def _nothing(*_: object) -> None:
    return None


def _call(hook: Callable[..., None], *args: object) -> None:
    try:
        hook(*args)
    except Exception:  # a hook (the journal) must not stop the writer thread
        log.exception("ledger writer: %s failed", getattr(hook, "__name__", "hook"))


class BatchWriter:
    def __init__(
        self,
        flush_fn: Callable[[Rows], None],
        *,
        batch_size: int = 500,
        max_attempts: int = 5,
        retry_delay_s: float = 0.2,
        max_queue: int = 1_000_000,
        on_written: Callable[[Rows], None] = _nothing,
        on_quarantine: Callable[[LedgerRow, BaseException], None] = _nothing,
        on_defer: Callable[[Rows], None] = _nothing,
        on_tick: Callable[[], None] = _nothing,
        tick_s: float = 1.0,
    ) -> None:
        self._flush_fn = flush_fn
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._on_written, self._on_quarantine, self._on_defer, self._on_tick = on_written, on_quarantine, on_defer, on_tick
        self._tick_s = tick_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.quarantined = 0

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
            try:
                item = self._queue.get(timeout=self._tick_s)
            except queue.Empty:
                self._tick()
                continue
            batch: Rows = []
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
                self.write(batch)
            self._tick()

    def _tick(self) -> None:
        _call(self._on_tick)

    def write(self, batch: Rows) -> bool:
        """Write ``batch`` now, in the calling thread; False if any row had to be given up.

        Every row ends written, quarantined or deferred, and its hook is called."""
        exc = self._attempt(batch)
        if exc is None:
            return True
        if not is_data_error(exc):  # hooks run before the counts: who sees a count sees the hook done
            log.error("ledger write failed %d times, gave up %d rows: %s", self._max_attempts, len(batch), exc)
            _call(self._on_defer, batch)
            self.dropped += len(batch)
            return False
        if len(batch) == 1:
            log.error("ledger row %s refused by the database, quarantined: %s", batch[0].request_id, exc)
            _call(self._on_quarantine, batch[0], exc)
            self.quarantined += 1
            return True
        log.warning("ledger batch of %d refused (%s); writing its rows one by one", len(batch), exc)
        return all([self.write([row]) for row in batch])

    def _attempt(self, batch: Rows) -> BaseException | None:
        """None once written; the last error otherwise. Only errors of availability are retried."""
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._flush_fn(batch)
            except Exception as exc:
                if is_data_error(exc) or attempt == self._max_attempts:
                    return exc
                log.warning("ledger write failed (attempt %d): %s", attempt, exc)
                time.sleep(self._retry_delay_s * 2 ** (attempt - 1))
            else:
                _call(self._on_written, batch)
                self.written += len(batch)
                return None
        raise AssertionError("unreachable")

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
