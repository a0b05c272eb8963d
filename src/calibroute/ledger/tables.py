"""The ledger's current schema as SQLAlchemy Core tables (SQLite and PostgreSQL alike).

Times are stored in UTC. SQLite has no time-zone type, so every datetime is converted
to UTC before it is written or compared (``as_utc``); text comparison then orders correctly.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("api_key_id", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("task_class", String(16), nullable=True),
    Column("model", String(200), nullable=True),
    Column("route_rule", String(32), nullable=True),
    Column("budget", String(200), nullable=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("baseline_cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("fallback_path", Text, nullable=False, default="[]"),  # JSON list of model names
    Column("stream", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    Column("prompt", Text, nullable=True),  # only with store_prompts
    Column("confidence", Float, nullable=True),  # the classifier's confidence in task_class
    Column("reason", Text, nullable=True),  # the decision's one-sentence reason
    Column("cached_tokens", Integer, nullable=False, default=0, server_default="0"),  # prompt tokens read from cache
    Column("cache_saved_usd", Float, nullable=False, default=0.0, server_default="0"),
    Column("affinity_saved_usd", Float, nullable=False, default=0.0, server_default="0"),
    Index("ix_requests_created_at", "created_at"),
    # the dashboard's "last N requests" filtered by class / model / status / key / rule, newest first
    Index("ix_requests_task_class_id", "task_class", "id"),
    Index("ix_requests_model_id", "model", "id"),
    Index("ix_requests_status_id", "status", "id"),
    Index("ix_requests_api_key_id_id", "api_key_id", "id"),  # also serves what ix_requests_api_key_id did (m008)
    Index("ix_requests_route_rule_id", "route_rule", "id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex of the token
    Column("spend_limit_usd", Float, nullable=True),
    Column("spent_usd", Float, nullable=False, default=0.0),  # running total, updated with each batch
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("reserved_usd", Float, nullable=False, default=0.0, server_default="0"),  # sum of live spend_reservations
    Column("rpm_limit", Integer, nullable=True),  # requests per minute (null = none)
    Column("tpm_limit", Integer, nullable=True),  # tokens per minute (null = none)
    Column("kind", String(16), nullable=False, default="api", server_default="api"),  # "api" or "admin" (keys.py)
)

# Upper-bound costs held for requests in flight against keys with a spend limit (see reservations.py).
spend_reservations = Table(
    "spend_reservations",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("api_key_id", String(32), nullable=False),
    Column("amount_usd", Float, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_spend_reservations_expires_at", "expires_at"),
)

# The dashboard's hourly rollups of ``requests`` (see rollup.py): hour is 'YYYY-MM-DD HH' in UTC;
# a missing class / model / key is '' so the unique keys can be upserted.
def _rollup_sums() -> list[Column[object]]:
    """The summed columns of both rollups; those added later (m006) have a server default so the
    migration can add them to existing rollups."""
    return [*(Column(name, Integer, nullable=False) for name in ("requests", "prompt_tokens", "completion_tokens",
                                                                 "reasoning_tokens")),
            Column("cost_usd", Float, nullable=False),
            Column("baseline_cost_usd", Float, nullable=False),
            Column("cached_tokens", Integer, nullable=False, server_default="0"),
            Column("cache_saved_usd", Float, nullable=False, server_default="0"),
            Column("affinity_saved_usd", Float, nullable=False, server_default="0")]


ROLLUP_SUMS = tuple(c.name for c in _rollup_sums())  # "requests" first: rollup.py counts rows for it


requests_hourly = Table(
    "requests_hourly",
    metadata,
    Column("hour", String(13), nullable=False),
    Column("task_class", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("route_rule", String(32), nullable=False),
    Column("fell_back", Integer, nullable=False),  # 1: more than one model tried
    *_rollup_sums(),
    Index("ux_requests_hourly", "hour", "task_class", "model", "status", "http_status", "route_rule", "fell_back",
          unique=True),
)
requests_hourly_by_key = Table(
    "requests_hourly_by_key",
    metadata,
    Column("hour", String(13), nullable=False),
    Column("api_key_id", String(32), nullable=False),
    *_rollup_sums(),
    Index("ux_requests_hourly_by_key", "hour", "api_key_id", unique=True),
)
rollup_state = Table(
    "rollup_state",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("last_id", Integer, nullable=False),  # every requests row with id <= last_id is in the rollups
)

migrations = Table(
    "calibroute_migrations",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
