"""Where the ledger lives: a SQLite file or a PostgreSQL URL, opened through SQLAlchemy.

``resolve_url`` owns the one lookup order for the location: an explicit argument, then
$CALIBROUTE_LEDGER, then ``./calibroute-ledger.db``. Connection failures become one-line
``ConfigError``s that name the location with its password hidden.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, update
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


DEFAULT_JOURNAL = "calibroute-journal"


def journal_dir_for(url: URL, journal: str | os.PathLike[str] | bool) -> Path | None:
    """The journal directory, created (mode 0700) if needed: ``journal`` itself when a path;
    when True, ``<ledger file>.journal`` for SQLite, ``./calibroute-journal/<db>-<hash>``
    for a server (the hash of the URL keeps two databases' rows apart); None when False
    or for an in-memory SQLite ledger."""
    if journal is False:
        return None
    if journal is True:
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                return None
            path = Path(f"{url.database}.journal")
        else:
            ident = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:8]
            path = Path(DEFAULT_JOURNAL) / f"{url.database or 'db'}-{ident}"
    else:
        path = Path(journal).expanduser()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise ConfigError(f"ledger journal {path}: cannot use: {exc.strerror or exc}") from None
    return path.resolve()


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


INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL's integer; SQLite takes any of these too
_TEXT_LIMITS = {c.name: getattr(c.type, "length", None) for c in tables.requests.columns}


def safe_text(value: str | None, limit: int | None = None) -> str | None:
    """Text every database takes: lone surrogates become U+FFFD (pairs are joined), NUL is
    removed (PostgreSQL refuses it in text), clipped to ``limit`` characters (varchar(n))."""
    if value is None:
        return None
    if type(value) is not str:
        value = str(value)
    if not value.isascii():  # the common case costs one C-speed scan
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] if limit is not None and len(value) > limit else value


def _int(value: object) -> int:
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return value
    try:
        return min(max(int(value), INT_MIN), INT_MAX)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def row_values(row: LedgerRow, store_prompts: bool) -> dict[str, Any]:
    """A LedgerRow as column values any database accepts; the prompt is dropped unless prompts
    are stored. Made safe here, at the one place rows become values, so a hostile string (a
    prompt, a backend's error message) or number can never fail the batch it travels in."""
    n = _TEXT_LIMITS
    return {
        "request_id": safe_text(row.request_id, n["request_id"]) or "unknown",
        "created_at": tables.as_utc(row.created_at),
        "api_key_id": safe_text(row.api_key_id, n["api_key_id"]),
        "status": safe_text(row.status, n["status"]) or "error",
        "http_status": _int(row.http_status),
        "task_class": safe_text(row.task_class, n["task_class"]),
        "model": safe_text(row.model, n["model"]),
        "route_rule": safe_text(row.route_rule, n["route_rule"]),
        "budget": safe_text(row.budget, n["budget"]),
        "prompt_tokens": _int(row.prompt_tokens),
        "completion_tokens": _int(row.completion_tokens),
        "reasoning_tokens": _int(row.reasoning_tokens),
        "cost_usd": _float(row.cost_usd),
        "baseline_cost_usd": _float(row.baseline_cost_usd),
        "latency_ms": _float(row.latency_ms),
        "fallback_path": json.dumps([str(m) for m in row.fallback_path]),  # ASCII: escapes make any text safe
        "stream": bool(row.stream),
        "error": safe_text(row.error),
        "prompt": safe_text(row.prompt) if store_prompts else None,
        "confidence": None if row.confidence is None else _float(row.confidence),
        "reason": safe_text(row.reason),
        "cached_tokens": _int(row.cached_tokens),
        "cache_saved_usd": _float(row.cache_saved_usd),
        "affinity_saved_usd": _float(row.affinity_saved_usd),
    }


def _insert_new(conn: Connection, values: list[dict[str, Any]]) -> set[str]:
    """Insert rows whose request id is not stored yet; return the ids inserted now.

    Idempotent, so a journal replay or a retry after an ambiguous commit never duplicates."""
    t = tables.requests
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(t).on_conflict_do_nothing(index_elements=[t.c.request_id]).returning(t.c.request_id)
    return set(conn.execute(stmt, values).scalars())


def insert_rows(engine: Engine, rows: Iterable[LedgerRow], store_prompts: bool) -> dict[str, float]:
    """Insert a batch and add its cost to each key's running total, in one transaction.

    Rows already stored (same ``request_id``) are skipped and not charged again. Returns the
    cost added per key id, so the caller can settle its in-memory counters.
    """
    values = [row_values(r, store_prompts) for r in rows]
    per_key: dict[str, float] = {}
    if not values:
        return per_key
    with engine.begin() as conn:
        inserted = _insert_new(conn, values)
        for v in values:
            if v["api_key_id"] is not None and v["request_id"] in inserted:
                inserted.discard(v["request_id"])  # a request id twice in one batch is charged once
                per_key[v["api_key_id"]] = per_key.get(v["api_key_id"], 0.0) + v["cost_usd"]
        for key_id, cost in sorted(per_key.items()):  # a fixed order: no deadlock between two writers
            t = tables.api_keys
            conn.execute(update(t).where(t.c.id == key_id).values(spent_usd=t.c.spent_usd + cost))
        release_rows(conn, [v["request_id"] for v in values if v["api_key_id"] is not None])  # spend reservations
    return per_key


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.requests)).scalar_one())
