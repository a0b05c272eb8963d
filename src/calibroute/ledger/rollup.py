"""Hourly rollups of the ``requests`` table, so the dashboard's totals cost the same at 10 million rows as at 10 thousand.

``requests`` only grows (rows are inserted, never changed), so the rollups are filled
incrementally by id: ``refresh`` adds every row with ``id > rollup_state.last_id`` to
``requests_hourly`` (hour x class x model x status x rule x fell-back) and
``requests_hourly_by_key`` (hour x key) in chunks: each chunk is grouped with a plain read,
then upserted under the database's write lock (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL
advisory lock) only if ``last_id`` has not moved meanwhile, and ``last_id`` moves with it, so
the lock is held for a few thousand upserts, never for a scan.
Readers add the rows past ``last_id`` live (``tail_condition``), so answers are exact.

On PostgreSQL ids are drawn before commit, so a row can become visible after a higher id;
``refresh`` there only rolls up rows older than ``PG_SETTLE``, and the live tail covers the rest.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import tables
from .base import utcnow
from .dblock import locked_transaction

STATE = "hourly"
CHUNK = 500_000
PG_SETTLE = timedelta(seconds=60)
PG_LOCK_KEY = 0x63616C6963  # "calic": serialises rollup refreshes on PostgreSQL
_IN_PROCESS = threading.Lock()  # the page's parallel reads wait for one refresh instead of grouping the same chunk

_t = tables.requests
_h = tables.requests_hourly
_k = tables.requests_hourly_by_key
SUMS = tables.ROLLUP_SUMS


def hour_text(engine_or_conn: Engine | Connection) -> ColumnElement[Any]:
    """``requests.created_at`` as 'YYYY-MM-DD HH' (UTC), the rollups' hour key."""
    if engine_or_conn.dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
        return func.substr(_t.c.created_at, 1, 13)
    return func.to_char(func.timezone("UTC", _t.c.created_at), "YYYY-MM-DD HH24")


def fell_back() -> ColumnElement[bool]:
    return _t.c.fallback_path.like("%,%")  # a JSON list of more than one model


def last_id(conn: Connection) -> int:
    value = conn.execute(select(tables.rollup_state.c.last_id).where(tables.rollup_state.c.name == STATE)).scalar()
    return int(value or 0)


def _raw_sums() -> list[ColumnElement[Any]]:
    return [func.count(), *(func.coalesce(func.sum(_t.c[name]), 0) for name in SUMS[1:])]


def _upsert(conn: Connection, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={n: table.c[n] + stmt.excluded[n] for n in SUMS})
    conn.execute(stmt, rows)


Grouped = tuple[list[dict[str, Any]], list[dict[str, Any]]]
_DIMS = ["hour", "task_class", "model", "status", "http_status", "route_rule", "fell_back"]


def _group(conn: Connection, low: int, high: int) -> Grouped:
    """Requests with ``low < id <= high`` summed per rollup key (a read: no lock held)."""
    hour = hour_text(conn).label("hour")
    in_range = (_t.c.id > low, _t.c.id <= high)
    dims = [hour, func.coalesce(_t.c.task_class, ""), func.coalesce(_t.c.model, ""), _t.c.status, _t.c.http_status,
            func.coalesce(_t.c.route_rule, ""), case((fell_back(), 1), else_=0)]
    q = select(*dims, *_raw_sums()).where(*in_range).group_by(*dims)
    hourly = [dict(zip(_DIMS + list(SUMS), r)) for r in conn.execute(q)]
    key = func.coalesce(_t.c.api_key_id, "")
    q = select(hour, key, *_raw_sums()).where(*in_range).group_by(hour, key)
    keyed = [dict(zip(["hour", "api_key_id", *SUMS], r)) for r in conn.execute(q)]
    return hourly, keyed


def settled_max_id(conn: Connection) -> int:
    if conn.dialect.name == "sqlite":  # one writer at a time: every id below the max is committed
        return int(conn.execute(select(func.max(_t.c.id))).scalar() or 0)
    cutoff = utcnow() - PG_SETTLE
    return int(conn.execute(select(func.max(_t.c.id)).where(_t.c.created_at < cutoff)).scalar() or 0)


def _step(engine: Engine) -> bool:
    """Roll up one chunk: group it without a lock (readers do not block the ledger's writer),
    then upsert it under the write lock if no other process moved ``last_id`` meanwhile.
    False when there was nothing to do."""
    with engine.connect() as conn:
        low = last_id(conn)
        high = min(settled_max_id(conn), low + CHUNK)
        if high <= low:
            return False
        hourly, keyed = _group(conn, low, high)

    with locked_transaction(engine, PG_LOCK_KEY) as conn:
        if last_id(conn) != low:
            return True  # another reader rolled this chunk up first
        _upsert(conn, _h, _DIMS, hourly)
        _upsert(conn, _k, ["hour", "api_key_id"], keyed)
        st = tables.rollup_state
        if conn.execute(st.update().where(st.c.name == STATE).values(last_id=high)).rowcount == 0:
            conn.execute(st.insert().values(name=STATE, last_id=high))
    return True


def step_in_process(engine: Engine) -> bool:
    """One chunk (``_step``), in turn with this process's other refreshes."""
    with _IN_PROCESS:
        return _step(engine)


def refresh(engine: Engine) -> None:
    """Bring the rollups up to date (a no-op read when nothing new was written)."""
    with engine.connect() as conn:
        if settled_max_id(conn) <= last_id(conn):
            return
    with _IN_PROCESS:
        while _step(engine):
            pass
