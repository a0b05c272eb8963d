"""The dashboard's reads of the ledger: bounded, indexed queries over a window of whole hours.

Totals and series come from the hourly rollups (rollup.py) plus the few rows not rolled up
yet, so their cost depends on the window's hours, not on how many requests it holds. The
last N requests (N <= ``MAX_RECENT``) are read newest first by primary key or a
(column, id) index; latency percentiles over at most ``LATENCY_SAMPLE`` of the window's
newest rows (``created_at`` index), computed by the database on PostgreSQL. Savings are
against "always the largest model", as in ``report.py``. Works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, case, func, select

from ..errors import InputError
from . import rollup, tables
from .base import utcnow
from .report import GROUPINGS, parse_when

MAX_SPAN = timedelta(days=366)
MAX_RECENT = 500
LATENCY_SAMPLE = 50_000
BUCKETS = ("hour", "day")
LOW_CONFIDENCE_RULE = "low_confidence"
ESCALATED_RULE = "escalated"

_t = tables.requests


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """A half-open UTC period ``since <= created_at < until`` in whole hours (the rollups' grain:
    ``since`` is rounded down, ``until`` up) and its chart bucket."""

    since: datetime
    until: datetime
    bucket: str

    @classmethod
    def parse(cls, since: str | None, until: str | None = None, bucket: str | None = None) -> Window:
        now = utcnow()
        end = parse_when(until, now=now) if until else now
        start = parse_when(since, now=now) if since else end - timedelta(hours=24)
        if start >= end:
            raise InputError("since must be before until")
        if end - start > MAX_SPAN:
            raise InputError(f"window longer than {MAX_SPAN.days} days")
        if bucket is None:
            bucket = "hour" if end - start <= timedelta(days=3) else "day"
        if bucket not in BUCKETS:
            raise InputError(f"bucket must be one of {', '.join(BUCKETS)}")
        return cls(_floor_hour(tables.as_utc(start)), _ceil_hour(tables.as_utc(end)), bucket)

    def where(self) -> ColumnElement[bool]:
        return and_(_t.c.created_at >= self.since, _t.c.created_at < self.until)

    def where_by_id(self) -> ColumnElement[bool]:
        """The same filter written so no planner takes the ``created_at`` index for it: for the
        rows past the rollup, which are few and found by primary key (the index would walk the
        whole window: 10 M entries for 30 days of a 10 M-row ledger)."""
        at = func.coalesce(_t.c.created_at, _t.c.created_at)
        return and_(at >= self.since, at < self.until)

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "bucket": self.bucket}


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent read of rollups and live tail (a refresh in between must not count rows twice)."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN")  # WAL: one snapshot for the whole transaction
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        yield conn


def _hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H")


# Metrics summed per group; each as (rollup expression, live-row expression).
def _metrics(h: Any) -> dict[str, tuple[ColumnElement[Any], ColumnElement[Any]]]:
    def when(rolled: ColumnElement[bool], live: ColumnElement[bool]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return func.sum(case((rolled, h.c.requests), else_=0)), func.sum(case((live, 1), else_=0))

    out = {"requests": (func.sum(h.c.requests), func.count())}
    out.update({n: (func.sum(h.c[n]), func.sum(_t.c[n])) for n in rollup.SUMS[1:]})
    if "status" in h.c:
        out["errors"] = when(h.c.status != "ok", _t.c.status != "ok")
        out["fallbacks"] = when(h.c.fell_back == 1, rollup.fell_back())
        out["low_confidence"] = when(h.c.route_rule == LOW_CONFIDENCE_RULE, _t.c.route_rule == LOW_CONFIDENCE_RULE)
        out["escalations"] = when(h.c.route_rule == ESCALATED_RULE, _t.c.route_rule == ESCALATED_RULE)
    return out


def _dims(engine: Engine, h: Any, names: list[str], bucket: str) -> list[tuple[ColumnElement[Any], ColumnElement[Any]]]:
    width = 13 if bucket == "hour" else 10
    out = []
    for name in names:
        if name == "bucket":
            out.append((func.substr(h.c.hour, 1, width), func.substr(rollup.hour_text(engine), 1, width)))
        elif name == "fell_back":
            out.append((h.c.fell_back, case((rollup.fell_back(), 1), else_=0)))
        elif name == "http_status":
            out.append((h.c.http_status, _t.c.http_status))
        else:
            out.append((h.c[name], func.coalesce(_t.c[name], "")))
    return out


def aggregate(engine: Engine, window: Window, dims: list[str], *, by_key: bool = False,
              where: tuple[ColumnElement[bool], ColumnElement[bool]] | None = None,
              refresh: bool = True) -> list[dict[str, Any]]:
    """Metrics summed per ``dims`` over the window: the hourly rollup plus the rows not rolled up yet
    (``refresh`` False: as they are, e.g. while a background catch-up runs; rollup_catchup.py)."""
    if refresh:
        rollup.refresh(engine)
    h = tables.requests_hourly_by_key if by_key else tables.requests_hourly
    dim_cols, metrics = _dims(engine, h, dims, window.bucket), _metrics(h)
    rolled_where = [h.c.hour >= _hour_key(window.since), h.c.hour < _hour_key(window.until)]
    live_where = [window.where_by_id()]
    if where is not None:
        rolled_where.append(where[0])
        live_where.append(where[1])
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    with _snapshot(engine) as conn:
        done = rollup.last_id(conn)
        for side in (0, 1):
            group = [d[side] for d in dim_cols]
            conds = rolled_where if side == 0 else [*live_where, _t.c.id > done]
            q = select(*group, *(m[side] for m in metrics.values())).where(*conds)
            for row in conn.execute(q.group_by(*group) if group else q):
                key, values = tuple(row[: len(group)]), row[len(group):]
                if not group and not values[0]:
                    continue  # an aggregate over no rows
                acc = totals.setdefault(key, dict.fromkeys(metrics, 0))
                for name, value in zip(metrics, values):
                    acc[name] += value or 0
    return [{**dict(zip(dims, key)), **acc} for key, acc in sorted(totals.items(), key=lambda kv: tuple(map(str, kv[0])))]


def _bucket_label(value: str, bucket: str) -> str:
    """ISO start of the bucket, UTC, e.g. ``2026-12-03T15:00:00Z``."""
    return f"{value[:10]}T{value[11:13]}:00:00Z" if bucket == "hour" else f"{value[:10]}T00:00:00Z"


def _money(cost: float, baseline: float) -> dict[str, Any]:
    savings = baseline - cost
    return {"cost_usd": cost, "baseline_cost_usd": baseline, "savings_usd": savings,
            "savings_pct": 100.0 * savings / baseline if baseline > 0 else None}


def summary(engine: Engine, window: Window, refresh: bool = True) -> dict[str, Any]:
    """Totals over the window, with the shares of fallbacks, low-confidence decisions and escalations."""
    rows = aggregate(engine, window, [], refresh=refresh)
    t = rows[0] if rows else dict.fromkeys(_metrics(tables.requests_hourly), 0)
    n = int(t["requests"])
    counts = {k: int(t[k]) for k in ("requests", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                                      "cached_tokens", "fallbacks", "low_confidence", "escalations")}
    shares = {f"{k.rstrip('s')}_share": (t[k] / n if n else None) for k in ("fallbacks", "low_confidence", "escalations")}
    cache = {k: float(t[k]) for k in ("cache_saved_usd", "affinity_saved_usd")}
    return {"window": window.to_dict(), **counts, **_money(float(t["cost_usd"]), float(t["baseline_cost_usd"])), **cache,
            **shares}


def _none(value: str) -> str:
    return value or "none"


def spend_series(engine: Engine, window: Window, by: str | None = None, refresh: bool = True) -> dict[str, Any]:
    """Spend and savings per bucket, overall (``by`` None) or per class / model / key."""
    if by is not None and by not in GROUPINGS:
        raise InputError(f"by must be one of {', '.join(GROUPINGS)}")
    column = GROUPINGS[by] if by else None
    rows = aggregate(engine, window, ["bucket", *([column] if column else [])], by_key=by == "key", refresh=refresh)
    points = [{"bucket": _bucket_label(r["bucket"], window.bucket), "group": _none(r[column]) if column else "all",
               "requests": int(r["requests"]), **_money(float(r["cost_usd"]), float(r["baseline_cost_usd"]))} for r in rows]
    return {"window": window.to_dict(), "by": by or "all", "points": points}


def class_flows(engine: Engine, window: Window, refresh: bool = True) -> dict[str, Any]:
    """Requests per (task class -> model that answered), with their cost."""
    flows = [{"task_class": _none(r["task_class"]), "model": _none(r["model"]), "requests": int(r["requests"]),
              "fallbacks": int(r["fallbacks"]), **_money(float(r["cost_usd"]), float(r["baseline_cost_usd"]))}
             for r in aggregate(engine, window, ["task_class", "model"], refresh=refresh)]
    mix: dict[str, int] = {}
    for f in flows:
        mix[f["task_class"]] = mix.get(f["task_class"], 0) + f["requests"]
    return {"window": window.to_dict(), "flows": flows, "class_mix": mix}


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    return sorted_values[int(rank) - 1]


def latency(engine: Engine, window: Window, sample: int = LATENCY_SAMPLE) -> dict[str, Any]:
    """p50/p95 latency per model of successful requests, over the newest ``sample`` rows in the window."""
    q = (select(_t.c.model, _t.c.latency_ms).where(window.where(), _t.c.status == "ok")
         .order_by(_t.c.created_at.desc()).limit(sample))
    models = _percentiles_in_db(engine, q) if engine.dialect.name == "postgresql" else _percentiles_here(engine, q)
    sampled = sum(m["requests"] for m in models)
    return {"window": window.to_dict(), "sample_limit": sample, "sampled": sampled, "models": models}


def _percentiles_here(engine: Engine, sample: Select[Any]) -> list[dict[str, Any]]:
    per_model: dict[str, list[float]] = {}
    with engine.connect() as conn:
        for model, ms in conn.execute(sample):
            per_model.setdefault(model or "none", []).append(float(ms))
    models = []
    for name in sorted(per_model):
        values = sorted(per_model[name])
        models.append({"model": name, "requests": len(values), "p50_ms": _percentile(values, 50),
                       "p95_ms": _percentile(values, 95)})
    return models


def _percentiles_in_db(engine: Engine, sample: Select[Any]) -> list[dict[str, Any]]:
    """The same nearest-rank percentiles (``percentile_disc``) computed by PostgreSQL: sending the
    50,000 sampled rows to Python cost ~1 s on a loaded machine, the database's part 17 ms."""
    s = sample.subquery()
    model = func.coalesce(func.nullif(s.c.model, ""), "none").label("model")
    q = (select(model, func.count(), func.percentile_disc(0.5).within_group(s.c.latency_ms),
                func.percentile_disc(0.95).within_group(s.c.latency_ms)).group_by(model).order_by(model))
    with engine.connect() as conn:
        return [{"model": name, "requests": int(n), "p50_ms": float(p50), "p95_ms": float(p95)}
                for name, n, p50, p95 in conn.execute(q)]


def errors_series(engine: Engine, window: Window, refresh: bool = True) -> dict[str, Any]:
    """Failed requests per bucket and kind (``status``/``http_status``, e.g. ``error/502``)."""
    h = tables.requests_hourly
    rows = aggregate(engine, window, ["bucket", "status", "http_status"], where=(h.c.status != "ok", _t.c.status != "ok"),
                     refresh=refresh)
    points = [{"bucket": _bucket_label(r["bucket"], window.bucket), "kind": f"{r['status']}/{r['http_status']}",
               "requests": int(r["requests"])} for r in rows]
    return {"window": window.to_dict(), "points": points}


RECENT_FILTERS = {"class": _t.c.task_class, "model": _t.c.model, "status": _t.c.status, "key": _t.c.api_key_id,
                  "rule": _t.c.route_rule}


def recent(engine: Engine, limit: int = 50, filters: dict[str, str] | None = None,
           before_id: int | None = None) -> dict[str, Any]:
    """The newest ``limit`` requests (newest first), optionally filtered by exact column values."""
    if not 1 <= limit <= MAX_RECENT:
        raise InputError(f"limit must be between 1 and {MAX_RECENT}")
    conds = []
    for name, value in (filters or {}).items():
        if name not in RECENT_FILTERS:
            raise InputError(f"unknown filter {name!r}; use {', '.join(RECENT_FILTERS)}")
        conds.append(RECENT_FILTERS[name] == value)
    if before_id is not None:
        conds.append(_t.c.id < before_id)
    cols = [_t.c.id, _t.c.request_id, _t.c.created_at, _t.c.api_key_id, _t.c.status, _t.c.http_status,
            _t.c.task_class, _t.c.confidence, _t.c.route_rule, _t.c.model, _t.c.budget, _t.c.prompt_tokens,
            _t.c.completion_tokens, _t.c.reasoning_tokens, _t.c.cost_usd, _t.c.baseline_cost_usd, _t.c.latency_ms,
            _t.c.fallback_path, _t.c.stream, _t.c.error, _t.c.reason, _t.c.prompt]
    q = select(*cols).where(*conds).order_by(_t.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for row in rows:
        row["created_at"] = tables.as_utc(row["created_at"]).isoformat()
        row["fallback_path"] = json.loads(row["fallback_path"] or "[]")
        row["stream"] = bool(row["stream"])
    return {"limit": limit, "filters": filters or {}, "requests": rows}
