"""Where the ledger lives: a SQLite file or a PostgreSQL URL, opened through SQLAlchemy.

``resolve_url`` owns the one lookup order for the location: an explicit argument, then
$CALIBROUTE_LEDGER, then ``./calibroute-ledger.db``. Connection failures become one-line
``ConfigError``s that name the location with its password hidden.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigError
from . import tables
from .base import LedgerRow
from .migrations import migrate_engine
from .reservations import release_rows

DEFAULT_LEDGER = "calibroute-ledger.db"
ENV_VAR = "CALIBROUTE_LEDGER"
_URL_SCHEMES = ("sqlite:", "postgresql:", "postgresql+", "postgres:")


def resolve_url(location: str | os.PathLike[str] | None) -> URL:
    """A SQLAlchemy URL from a path or URL; ``postgresql://`` means the psycopg (3) driver."""
    raw = os.fspath(location) if location is not None else (os.environ.get(ENV_VAR) or DEFAULT_LEDGER)
    if not raw.strip():
        raise ConfigError("ledger location is empty")
    if not raw.startswith(_URL_SCHEMES):
        if "://" in raw:
            raise ConfigError(f"ledger URL {raw.split('://')[0]}://... not supported; use a path, sqlite:/// or postgresql://")
        return URL.create("sqlite", database=str(Path(raw).expanduser()))
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"ledger URL is not valid: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def describe(url: URL) -> str:
    """The location for messages: a file path, or the URL with its password hidden."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (key lookups, reports) run while the writer thread commits.
    # The busy timeout (30 s) comes from the driver's ``timeout`` connect argument.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: URL, *, must_exist: bool = False) -> Engine:
    """An engine with the schema migrated; raise ConfigError on any failure to get there."""
    where = describe(url)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "")
        if must_exist and not path.exists():
            raise ConfigError(f"no ledger at {where}")
        if not path.parent.is_dir():
            raise ConfigError(f"ledger {where}: directory {path.parent} does not exist")
    try:
        if sqlite:
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except (NoSuchModuleError, ImportError) as exc:
        hint = " (install calibroute[postgres])" if url.get_backend_name() == "postgresql" else ""
        raise ConfigError(f"ledger {where}: database driver not available: {exc}{hint}") from None
    try:
        migrate_engine(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError(f"ledger {where}: cannot open: {_first_line(exc)}") from None
    return engine


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def row_values(row: LedgerRow, store_prompts: bool) -> dict[str, Any]:
    """A LedgerRow as column values; the prompt is dropped unless prompts are stored."""
    return {
        "request_id": row.request_id,
        "created_at": tables.as_utc(row.created_at),
        "api_key_id": row.api_key_id,
        "status": row.status,
        "http_status": row.http_status,
        "task_class": row.task_class,
        "model": row.model,
        "route_rule": row.route_rule,
        "budget": row.budget,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cost_usd": row.cost_usd,
        "baseline_cost_usd": row.baseline_cost_usd,
        "latency_ms": row.latency_ms,
        "fallback_path": json.dumps(list(row.fallback_path)),
        "stream": row.stream,
        "error": row.error,
        "prompt": row.prompt if store_prompts else None,
        "confidence": row.confidence,
        "reason": row.reason,
    }


def insert_rows(engine: Engine, rows: Iterable[LedgerRow], store_prompts: bool) -> dict[str, float]:
    """Insert a batch and add its cost to each key's running total, in one transaction.

    Returns the cost added per key id, so the caller can settle its in-memory counters.
    """
    values = [row_values(r, store_prompts) for r in rows]
    per_key: dict[str, float] = {}
    for v in values:
        if v["api_key_id"] is not None:
            per_key[v["api_key_id"]] = per_key.get(v["api_key_id"], 0.0) + v["cost_usd"]
    if not values:
        return per_key
    with engine.begin() as conn:
        conn.execute(tables.requests.insert(), values)
        for key_id, cost in per_key.items():
            t = tables.api_keys
            conn.execute(update(t).where(t.c.id == key_id).values(spent_usd=t.c.spent_usd + cost))
        release_rows(conn, [v["request_id"] for v in values if v["api_key_id"] is not None])  # spend reservations
    return per_key


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.requests)).scalar_one())
