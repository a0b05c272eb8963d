"""The dashboard's reads of the ledger: bounded, indexed queries over a time window.

Every query filters on ``created_at`` (indexed) within a window of at most ``MAX_SPAN``
and returns a bounded number of rows: aggregates grouped by hour or day, the last N
requests (N <= ``MAX_RECENT``), latency percentiles over at most ``LATENCY_SAMPLE`` of
the newest rows per window. Savings are against "always the largest model", as in
``report.py``. Works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, literal, select

from ..errors import InputError
from . import tables
from .base import utcnow
from .report import GROUPINGS, parse_when

MAX_SPAN = timedelta(days=366)
MAX_RECENT = 500
LATENCY_SAMPLE = 50_000
BUCKETS = ("hour", "day")
LOW_CONFIDENCE_RULE = "low_confidence"
ESCALATED_RULE = "escalated"

_t = tables.requests


@dataclass(frozen=True)
class Window:
    """A half-open UTC period ``since <= created_at < until`` and its chart bucket."""

    since: datetime
    until: datetime
    bucket: str

    @classmethod
    def parse(cls, since: str | None, until: str | None = None, bucket: str | None = None) -> "Window":
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
        return cls(tables.as_utc(start), tables.as_utc(end), bucket)

    def where(self) -> ColumnElement[bool]:
        return and_(_t.c.created_at >= self.since, _t.c.created_at < self.until)

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "bucket": self.bucket}


def _bucket_expr(engine: Engine, bucket: str) -> ColumnElement[Any]:
    if engine.dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
        return func.substr(_t.c.created_at, 1, 13 if bucket == "hour" else 10)
    return func.date_trunc(bucket, func.timezone("UTC", _t.c.created_at))


def _bucket_label(value: Any, bucket: str) -> str:
    """ISO start of the bucket, UTC, e.g. ``2026-12-03T15:00:00Z``."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z")
    text = str(value)
    return f"{text[:10]}T{text[11:13]}:00:00Z" if bucket == "hour" else f"{text[:10]}T00:00:00Z"


def _money(cost: float, baseline: float) -> dict[str, Any]:
    savings = baseline - cost
    return {"cost_usd": cost, "baseline_cost_usd": baseline, "savings_usd": savings,
            "savings_pct": 100.0 * savings / baseline if baseline > 0 else None}


def _flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_FELL_BACK = _t.c.fallback_path.like("%,%")  # more than one model tried


def summary(engine: Engine, window: Window) -> dict[str, Any]:
    """Totals over the window, with the shares of fallbacks, low-confidence decisions and escalations."""
    cols = [func.count(), _flag(_t.c.status != "ok"), func.coalesce(func.sum(_t.c.cost_usd), 0.0),
            func.coalesce(func.sum(_t.c.baseline_cost_usd), 0.0), _flag(_FELL_BACK),
            _flag(_t.c.route_rule == LOW_CONFIDENCE_RULE), _flag(_t.c.route_rule == ESCALATED_RULE),
            func.coalesce(func.sum(_t.c.prompt_tokens), 0), func.coalesce(func.sum(_t.c.completion_tokens), 0),
            func.coalesce(func.sum(_t.c.reasoning_tokens), 0)]
    with engine.connect() as conn:
        n, errors, cost, baseline, fell_back, low, esc, p, c, r = conn.execute(select(*cols).where(window.where())).one()
    share = (lambda k: k / n if n else None)  # noqa: E731
    return {
        "window": window.to_dict(), "requests": int(n), "errors": int(errors), **_money(float(cost), float(baseline)),
        "prompt_tokens": int(p), "completion_tokens": int(c), "reasoning_tokens": int(r),
        "fallbacks": int(fell_back), "low_confidence": int(low), "escalations": int(esc),
        "fallback_share": share(fell_back), "low_confidence_share": share(low), "escalation_share": share(esc),
    }


def spend_series(engine: Engine, window: Window, by: str | None = None) -> dict[str, Any]:
    """Spend and savings per bucket, overall (``by`` None) or per class / model / key."""
    if by is not None and by not in GROUPINGS:
        raise InputError(f"by must be one of {', '.join(GROUPINGS)}")
    bucket = _bucket_expr(engine, window.bucket).label("bucket")
    group = _t.c[GROUPINGS[by]].label("grp") if by else literal("all").label("grp")
    q = (select(bucket, group, func.count(), func.sum(_t.c.cost_usd), func.sum(_t.c.baseline_cost_usd))
         .where(window.where()).group_by(bucket, group).order_by(bucket, group))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    points = [{"bucket": _bucket_label(b, window.bucket), "group": g if g is not None else "none", "requests": int(n),
               **_money(float(c or 0.0), float(base or 0.0))} for b, g, n, c, base in rows]
    return {"window": window.to_dict(), "by": by or "all", "points": points}


def class_flows(engine: Engine, window: Window) -> dict[str, Any]:
    """Requests per (task class -> model that answered), with their cost."""
    q = (select(_t.c.task_class, _t.c.model, func.count(), func.sum(_t.c.cost_usd), func.sum(_t.c.baseline_cost_usd),
                _flag(_FELL_BACK))
         .where(window.where()).group_by(_t.c.task_class, _t.c.model).order_by(_t.c.task_class, _t.c.model))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    flows = [{"task_class": cls or "none", "model": model or "none", "requests": int(n), "fallbacks": int(fb),
              **_money(float(c or 0.0), float(base or 0.0))} for cls, model, n, c, base, fb in rows]
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
    per_model: dict[str, list[float]] = {}
    with engine.connect() as conn:
        for model, ms in conn.execute(q):
            per_model.setdefault(model or "none", []).append(float(ms))
    models = []
    for name in sorted(per_model):
        values = sorted(per_model[name])
        models.append({"model": name, "requests": len(values), "p50_ms": _percentile(values, 50),
                       "p95_ms": _percentile(values, 95)})
    sampled = sum(m["requests"] for m in models)
    return {"window": window.to_dict(), "sample_limit": sample, "sampled": sampled, "models": models}


def errors_series(engine: Engine, window: Window) -> dict[str, Any]:
    """Failed requests per bucket and kind (``status``/``http_status``, e.g. ``error/502``)."""
    bucket = _bucket_expr(engine, window.bucket).label("bucket")
    q = (select(bucket, _t.c.status, _t.c.http_status, func.count()).where(window.where(), _t.c.status != "ok")
         .group_by(bucket, _t.c.status, _t.c.http_status).order_by(bucket, _t.c.status, _t.c.http_status))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    points = [{"bucket": _bucket_label(b, window.bucket), "kind": f"{s}/{h}", "requests": int(n)} for b, s, h, n in rows]
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
