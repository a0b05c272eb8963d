"""``Ledger``: the gateway's record of every request, and its client keys and spend."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .base import LedgerRow
from .keys import ApiKey, KeyRing
from .store import describe, insert_rows
from .writer import BatchWriter


class Ledger:
    """Implements ``LedgerSink``: ``record`` enqueues, a writer thread inserts in batches.

    Use one ``Ledger`` per process and ``close`` it on shutdown (or use it as a context
    manager); rows still queued at close are written before it returns.
    """

    def __init__(
        self,
        engine: Engine,
        url: URL,
        *,
        store_prompts: bool = False,
        key_refresh_s: float = 5.0,
        batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.url = url
        self.store_prompts = store_prompts
        self.keys = KeyRing(engine, refresh_s=key_refresh_s)
        self.keys.reload()  # seed the spend counters from the database
        self._writer = BatchWriter(self._write_batch, batch_size=batch_size)
        self._closed = False

    @property
    def location(self) -> str:
        """The file path or the URL with its password hidden."""
        return describe(self.url)

    def record(self, row: LedgerRow) -> None:
        """Queue ``row``; never waits for the database. The key's spend counts at once."""
        if row.api_key_id is not None and row.cost_usd:
            self.keys.add_pending(row.api_key_id, row.cost_usd)
        if not self._writer.submit(row) and row.api_key_id is not None and row.cost_usd:
            self.keys.add_pending(row.api_key_id, -row.cost_usd)

    def _write_batch(self, rows: list[LedgerRow]) -> None:
        self.keys.commit(lambda: insert_rows(self.engine, rows, self.store_prompts))

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    def close(self) -> None:
        """Write everything queued, stop the writer and release connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
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

    def create_key(self, name: str, spend_limit_usd: float | None = None) -> tuple[ApiKey, str]:
        return self.keys.create(name, spend_limit_usd)

    def list_keys(self) -> list[ApiKey]:
        return self.keys.list()

    def revoke_key(self, key_id: str) -> ApiKey:
        return self.keys.revoke(key_id)

    def spent_usd(self, key_id: str) -> float:
        return self.keys.spent_usd(key_id)
