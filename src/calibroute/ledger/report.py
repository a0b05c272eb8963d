"""Spend and savings over a period, grouped by task class, model or API key.

Savings are measured against the baseline "always the largest model": each row's
``baseline_cost_usd`` is what the same tokens would have cost on the portfolio's
largest model (computed by the gateway when it recorded the row), so
``savings = baseline_cost - cost``. Periods are half-open: ``since <= t < until``, UTC.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, case, func, select

from ..errors import InputError
from . import tables
from .base import utcnow

GROUPINGS = {"class": "task_class", "model": "model", "key": "api_key_id"}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``7d``/``12h``/``30m``/``2w`` ago, or an ISO date (its 00:00 UTC) or datetime (UTC if naive)."""
    now = now or utcnow()
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(**{_UNIT[m.group(2).lower()]: float(m.group(1))})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), timezone.utc)
        return tables.as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise InputError(
            f"cannot read time {text!r}: use e.g. 7d, 12h, 30m, 2w, 2026-11-01 or 2026-11-01T08:00"
        ) from None


@dataclass(frozen=True)
class SpendLine:
    """Totals for one group (or for everything, in ``SpendReport.total``)."""

    group: str
    requests: int = 0
    errors: int = 0  # rows whose status is not "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    label: str = ""  # e.g. the key's name when grouping by key
    cached_tokens: int = 0  # prompt tokens read from the backends' prompt caches (priced at the cached price)
    cache_saved_usd: float = 0.0  # what those cost less than fresh input
    affinity_saved_usd: float = 0.0  # on turns affinity kept on their model: routed model's cost - actual (may be < 0)

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @property
    def savings_pct(self) -> float | None:
        return 100.0 * self.savings_usd / self.baseline_cost_usd if self.baseline_cost_usd > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "savings_usd": self.savings_usd, "savings_pct": self.savings_pct}


@dataclass(frozen=True)
class SpendReport:
    since: datetime | None
    until: datetime
    groups: dict[str, list[SpendLine]]  # grouping name ("class", "model", "key") -> lines
    total: SpendLine

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat(),
            "total": self.total.to_dict(),
            "by": {name: [line.to_dict() for line in lines] for name, lines in self.groups.items()},
        }


def _totals(engine: Engine, column: str | None, since: datetime | None, until: datetime) -> list[SpendLine]:
    t = tables.requests
    group_col = t.c[column] if column else None
    cols = [
        func.count(),
        func.coalesce(func.sum(case((t.c.status != "ok", 1), else_=0)), 0),
        func.coalesce(func.sum(t.c.prompt_tokens), 0),
        func.coalesce(func.sum(t.c.completion_tokens), 0),
        func.coalesce(func.sum(t.c.reasoning_tokens), 0),
        func.coalesce(func.sum(t.c.cost_usd), 0.0),
        func.coalesce(func.sum(t.c.baseline_cost_usd), 0.0),
        func.coalesce(func.sum(t.c.cached_tokens), 0),
        func.coalesce(func.sum(t.c.cache_saved_usd), 0.0),
        func.coalesce(func.sum(t.c.affinity_saved_usd), 0.0),
    ]
    query = select(*([group_col] if group_col is not None else []), *cols).where(t.c.created_at < tables.as_utc(until))
    if since is not None:
        query = query.where(t.c.created_at >= tables.as_utc(since))
    if group_col is not None:
        query = query.group_by(group_col)
    with engine.connect() as conn:
        result = list(conn.execute(query))
    lines = []
    for r in result:
        name, nums = (r[0], r[1:]) if group_col is not None else ("total", r)
        lines.append(SpendLine(
            group=str(name) if name is not None else "(none)",
            requests=int(nums[0]), errors=int(nums[1]), prompt_tokens=int(nums[2]),
            completion_tokens=int(nums[3]), reasoning_tokens=int(nums[4]),
            cost_usd=float(nums[5]), baseline_cost_usd=float(nums[6]), cached_tokens=int(nums[7]),
            cache_saved_usd=float(nums[8]), affinity_saved_usd=float(nums[9]),
        ))
    return sorted(lines, key=lambda line: (-line.cost_usd, line.group))


def _key_names(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.id: r.name for r in conn.execute(select(tables.api_keys.c.id, tables.api_keys.c.name))}


def spend_report(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None, by: list[str] | None = None
) -> SpendReport:
    """Totals and per-group lines for ``since <= created_at < until`` (until defaults to now)."""
    until = until or utcnow()
    if since is not None and since >= until:
        raise InputError(f"empty period: since {since.isoformat()} is not before until {until.isoformat()}")
    names = by or ["class", "model"]
    unknown = [n for n in names if n not in GROUPINGS]
    if unknown:
        raise InputError(f"cannot group by {unknown[0]!r}; expected one of {', '.join(GROUPINGS)}")
    groups = {name: _totals(engine, GROUPINGS[name], since, until) for name in names}
    if "key" in groups:
        labels = _key_names(engine)
        groups["key"] = [SpendLine(**{**asdict(line), "label": labels.get(line.group, "")}) for line in groups["key"]]
    (total,) = _totals(engine, None, since, until)
    return SpendReport(since=since, until=until, groups=groups, total=total)
