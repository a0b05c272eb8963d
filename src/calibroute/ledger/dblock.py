"""A transaction that holds the ledger's write lock across processes from its first statement.

SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock up front (waiting out the busy
timeout), with the driver's own transaction handling switched off so it cannot interfere.
PostgreSQL: an advisory transaction lock on ``key``, so only work under the same key is
serialised (migrations, rollup refreshes), never the gateway's row inserts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text


@contextmanager
def locked_transaction(engine: Engine, key: int) -> Iterator[Connection]:
    """Commit when the block ends, roll back if it raises."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield conn
