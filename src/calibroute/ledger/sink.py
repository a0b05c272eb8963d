"""``Ledger``: the gateway's record of every request, and its client keys and spend."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .base import LedgerRow
from .journal import Journal, encode_row, quarantine, replay
from .keys import ApiKey, KeyRing
from .store import describe, insert_rows
from .writer import BatchWriter

log = logging.getLogger("calibroute.ledger")
RETRY_KEPT_S = 30.0  # how often rows given up during a database outage are tried again


class Ledger:
    """Implements ``LedgerSink`` (and ``JournaledSink``): ``record`` journals the row (with a
    journal directory) and enqueues it, a writer thread inserts in batches.

    Use one ``Ledger`` per process and ``close`` it on shutdown (or use it as a context
    manager); rows still queued at close are written before it returns. With a journal,
    rows left by a process that died are written when the ledger opens (``replayed``).
    """

    def __init__(
        self,
        engine: Engine,
        url: URL,
        *,
        store_prompts: bool = False,
        key_refresh_s: float = 5.0,
        batch_size: int = 500,
        journal_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.url = url
        self.store_prompts = store_prompts
        self.keys = KeyRing(engine, refresh_s=key_refresh_s)
        self.journal: Journal | None = None
        self.replayed = 0
        self.quarantined = 0  # rows the database refused even alone (dead-letter file, or logged)
        if journal_dir is not None:
            self.replayed = self._replay(journal_dir)  # before the keys' totals are read
            self.journal = Journal(journal_dir, store_prompts=store_prompts)
        self.keys.reload()  # seed the spend counters from the database
        j = self.journal
        hooks = {"on_written": j.settle, "on_defer": j.keep, "on_tick": self._tick} if j is not None else {}
        self._retry_kept_at = 0.0
        # rows given up are retried apart (one attempt each time): not counted twice, no backoff stall
        self._retrier = BatchWriter(self._write_batch, max_attempts=1, on_quarantine=self._quarantine)
        self._writer = BatchWriter(self._write_batch, batch_size=batch_size, on_quarantine=self._quarantine, **hooks)
        self._closed = False

    @property
    def location(self) -> str:
        """The file path or the URL with its password hidden."""
        return describe(self.url)

    def record(self, row: LedgerRow) -> None:
        """Journal and queue ``row``; never waits for the database."""
        self.accept(row)
        self.enqueue([row])

    def accept(self, row: LedgerRow) -> None:
        """Make ``row`` durable now (one write to the journal, if any); the key's spend counts at once.
        Hand it over with ``enqueue`` later (the gateway groups rows for a few ms)."""
        if self.journal is not None:
            self.journal.append(row)
        if row.api_key_id is not None and row.cost_usd:
            self.keys.add_pending(row.api_key_id, row.cost_usd)

    def enqueue(self, rows: list[LedgerRow]) -> None:
        """Queue accepted rows for the writer thread."""
        for row in rows:
            if self._writer.submit(row):
                continue
            if row.api_key_id is not None and row.cost_usd:
                self.keys.add_pending(row.api_key_id, -row.cost_usd)
            if self.journal is not None:
                self.journal.keep([row])

    def _write_batch(self, rows: list[LedgerRow]) -> None:
        self.keys.commit(lambda: insert_rows(self.engine, rows, self.store_prompts))

    def _quarantine(self, row: LedgerRow, exc: BaseException) -> None:
        self.quarantined += 1
        if row.api_key_id is not None and row.cost_usd:
            self.keys.add_pending(row.api_key_id, -row.cost_usd)  # not in the database: not in its total
        if self.journal is not None:
            self.journal.quarantine(row, exc)
        else:
            log.error("quarantined ledger row: %s", json.dumps(encode_row(row, self.store_prompts), default=str))

    def _tick(self) -> None:
        """On the writer thread: fsync the journal; retry rows given up once the database may be back."""
        assert self.journal is not None
        self.journal.tick()
        if self.journal.kept and time.monotonic() >= self._retry_kept_at:
            self._retry_kept_at = time.monotonic() + RETRY_KEPT_S
            kept = list(self.journal.kept)
            replay(self.journal.directory, self._retrier.write, paths=kept)
            self.journal.kept = [p for p in self.journal.kept if p not in kept or p.exists()]

    def _replay(self, directory: Path) -> int:
        """Rows that a process which died had journaled: written (unless already stored) now."""
        def refused(row: LedgerRow, exc: BaseException) -> None:
            self.quarantined += 1
            quarantine(directory, row, exc, self.store_prompts)

        writer = BatchWriter(lambda rows: insert_rows(self.engine, rows, self.store_prompts), on_quarantine=refused)
        return replay(directory, writer.write)

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def dropped(self) -> int:
        """Rows not written by this process: given up (kept in the journal, if any) or recorded after close."""
        return self._writer.dropped

    def close(self) -> None:
        """Write everything queued, stop the writer and release connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        if self.journal is not None:
            self.journal.close()
        self.engine.dispose()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- client keys (see keys.py) ------------------------------------------------------
    def authenticate(self, token: str) -> ApiKey | None:
        return self.keys.authenticate(token)

    def keys_enabled(self) -> bool:
        return self.keys.keys_enabled()

    def create_key(self, name: str, spend_limit_usd: float | None = None, *, kind: str = "api") -> tuple[ApiKey, str]:
        return self.keys.create(name, spend_limit_usd, kind=kind)

    def list_keys(self) -> list[ApiKey]:
        return self.keys.list()

    def revoke_key(self, key_id: str) -> ApiKey:
        return self.keys.revoke(key_id)

    def spent_usd(self, key_id: str) -> float:
        return self.keys.spent_usd(key_id)
