"""Named, append-only schema migrations, each recorded once in ``calibroute_migrations``.

As in simonw/llm's ``migrations.py``: a migration is a function decorated with
``@migration``; its name is its identity, so never rename or edit one that has shipped,
only append new ones. ``m001_initial`` creates the tables from ``tables.py``. A later
change to a table in ``tables.py`` needs a new migration that applies it to existing
databases and does nothing where the column is already there (fresh databases get it
from ``m001_initial``); ``add_column_if_missing`` does that for new columns.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, Engine, String, cast, func, inspect, select, update

from . import tables
from .base import utcnow
from .dblock import locked_transaction

Migration = Callable[[Connection], None]
PG_LOCK_KEY = 0x63616C6962  # "calib": the advisory lock that serialises migrations on PostgreSQL
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(conn: Connection) -> None:
    tables.requests.create(conn, checkfirst=True)
    tables.api_keys.create(conn, checkfirst=True)


@migration
def m002_spend_reservations_and_rate_limits(conn: Connection) -> None:
    """Reserved spend and per-key rate limits on ``api_keys``; the reservations themselves."""
    for name in ("reserved_usd", "rpm_limit", "tpm_limit"):
        add_column_if_missing(conn, "api_keys", tables.api_keys.c[name])
    tables.spend_reservations.create(conn, checkfirst=True)


@migration
def m003_decision_detail(conn: Connection) -> None:
    """The decision's confidence and reason on each request row, and the indexes the dashboard's
    filtered "last N requests" reads need."""
    tables.requests.create(conn, checkfirst=True)  # a ledger that never had it gets today's table whole
    for name in ("confidence", "reason"):
        add_column_if_missing(conn, "requests", tables.requests.c[name])
    for index in tables.requests.indexes:
        index.create(conn, checkfirst=True)


@migration
def m004_dashboard_rollups(conn: Connection) -> None:
    """Hourly rollups of ``requests`` for the dashboard (filled incrementally by rollup.py)."""
    for table in (tables.requests_hourly, tables.requests_hourly_by_key, tables.rollup_state):
        table.create(conn, checkfirst=True)


@migration
def m005_unique_request_id(conn: Connection) -> None:
    """One row per request id, enforced: the journal's replay and a retried batch rely on it.

    Ledgers written before this could hold a repeated id (nothing enforced it); those rows
    are kept, each repeat renamed ``<id>#<row id>``, so the index can be built."""
    tables.requests.create(conn, checkfirst=True)  # with the index, where the table is missing
    if "ux_requests_request_id" in {ix["name"] for ix in inspect(conn).get_indexes("requests")}:
        return
    t = tables.requests
    firsts = select(func.min(t.c.id)).group_by(t.c.request_id).scalar_subquery()
    renamed = func.substr(t.c.request_id, 1, 50) + "#" + cast(t.c.id, String)
    conn.execute(update(t).where(t.c.id.not_in(firsts)).values(request_id=renamed))
    conn.exec_driver_sql("CREATE UNIQUE INDEX ux_requests_request_id ON requests (request_id)")


@migration
def m006_cached_input(conn: Connection) -> None:
    """Cached prompt tokens, what the cache saved and what affinity saved, on each row and in the hourly rollups
    (existing rows and rollups read 0: nothing was recorded before)."""
    tables.requests.create(conn, checkfirst=True)
    for table in (tables.requests, tables.requests_hourly, tables.requests_hourly_by_key):
        table.create(conn, checkfirst=True)
        for name in ("cached_tokens", "cache_saved_usd", "affinity_saved_usd"):
            add_column_if_missing(conn, table.name, table.c[name])


@migration
def m007_key_kind(conn: Connection) -> None:
    """A key's kind: ``api`` (every key before this) or ``admin`` (may also open the dashboard)."""
    if "kind" not in {c["name"] for c in inspect(conn).get_columns("api_keys")}:
        conn.exec_driver_sql("ALTER TABLE api_keys ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'api'")


@migration
def m008_key_and_rule_indexes(conn: Connection) -> None:
    """(key, id) and (rule, id) indexes for the dashboard's "last N requests" filtered by key or rule:
    without them a rare value scans the whole table (1.1 s at 10 M rows on PostgreSQL). The
    (key, id) index replaces the plain key index. Builds both on an existing ledger (about a
    minute per 10 M rows, holding writes meanwhile, as m003 did)."""
    tables.requests.create(conn, checkfirst=True)
    for index in tables.requests.indexes:
        if index.name in ("ix_requests_api_key_id_id", "ix_requests_route_rule_id"):
            index.create(conn, checkfirst=True)
    if "ix_requests_api_key_id" in {ix["name"] for ix in inspect(conn).get_indexes("requests")}:
        conn.exec_driver_sql("DROP INDEX ix_requests_api_key_id")


def add_column_if_missing(conn: Connection, table: str, column: Column[object]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` unless the column exists (for future migrations)."""
    if column.name in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    ddl = column.type.compile(dialect=conn.dialect)
    default = column.server_default
    suffix = f" NOT NULL DEFAULT {default.arg}" if default is not None and not column.nullable else ""  # type: ignore[attr-defined]
    conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {ddl}{suffix}')


def migrate(conn: Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    tables.migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(tables.migrations.c.name)).scalars())
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        fn(conn)
        conn.execute(tables.migrations.insert().values(name=fn.__name__, applied_at=utcnow()))
        applied.append(fn.__name__)
    return applied


def applied_migrations(conn: Connection) -> list[str]:
    return list(conn.execute(select(tables.migrations.c.name).order_by(tables.migrations.c.name)).scalars())


def migrate_engine(engine: Engine) -> list[str]:
    """``migrate`` under a database-wide lock, so processes opening a new ledger together
    (several gateway workers, a gateway and the CLI) neither collide nor apply twice."""
    with locked_transaction(engine, PG_LOCK_KEY) as conn:
        return migrate(conn)
