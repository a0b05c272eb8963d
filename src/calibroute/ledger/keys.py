"""Client API keys: stored as SHA-256 hashes, looked up from an in-memory cache.

Why plain SHA-256 and not scrypt/bcrypt: those slow hashes protect low-entropy
passwords from guessing. Our tokens are 256 random bits made by ``secrets``, so a
leaked hash cannot be inverted by guessing either way, while a slow hash would add
tens of milliseconds to every request. (An HMAC with a server secret would add
nothing without a place to keep that secret apart from the database.)

The cache maps hash -> key and is reloaded from the database at most every
``refresh_s`` seconds, so a key created or revoked by another process (the CLI) takes
effect within that time; keys created through the same ``KeyRing`` count at once.
Spend is the key's stored running total plus the cost of rows recorded here but
not yet written, so limits hold before the writer thread catches up.

Kinds: an ``api`` key calls the API; an ``admin`` key calls the API the same way (with its own
limits, its requests recorded under it) and also opens the dashboard (``gateway/ui.py``), which
shows every key's spend and, where stored, prompts: so no ordinary key may.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, Engine, select, text, update

from ..errors import InputError
from . import tables
from .base import utcnow

TOKEN_PREFIX = "crk-"
API, ADMIN = "api", "admin"
KINDS = (API, ADMIN)


@dataclass(frozen=True)
class ApiKey:
    """A client key as the gateway sees it; ``spent_usd`` is current at lookup time."""

    id: str
    name: str
    spend_limit_usd: float | None
    spent_usd: float
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    rpm_limit: int | None = None  # requests per minute
    tpm_limit: int | None = None  # tokens (prompt + completion) per minute
    kind: str = API

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN

    @property
    def over_limit(self) -> bool:
        return self.spend_limit_usd is not None and self.spent_usd >= self.spend_limit_usd


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _from_row(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        id=m["id"],
        name=m["name"],
        spend_limit_usd=m["spend_limit_usd"],
        spent_usd=float(m["spent_usd"]),
        created_at=tables.as_utc(m["created_at"]) if m["created_at"] else None,
        revoked_at=tables.as_utc(m["revoked_at"]) if m["revoked_at"] else None,
        rpm_limit=m["rpm_limit"],
        tpm_limit=m["tpm_limit"],
        kind=m["kind"],
    )


UNSET = object()  # ``update`` leaves a setting alone unless it is given


def _check_limits(spend_limit_usd: object, rpm: object, tpm: object) -> None:
    if spend_limit_usd is not None and spend_limit_usd is not UNSET and not spend_limit_usd >= 0:  # type: ignore[operator]
        raise InputError("spend limit must be a number >= 0")
    for label, value in (("requests per minute", rpm), ("tokens per minute", tpm)):
        if value is not None and value is not UNSET and (not isinstance(value, int) or value < 1):
            raise InputError(f"{label} must be a whole number >= 1")


class KeyRing:
    """Keys of one ledger database, cached for the request path."""

    def __init__(self, engine: Engine, *, refresh_s: float = 5.0) -> None:
        self._engine = engine
        self.refresh_s = refresh_s  # seconds between reloads (the gateway reloads a little earlier, off the loop)
        self._lock = threading.Lock()  # guards the dicts below; never held during I/O
        self._sync = threading.Lock()  # orders batch commits against reloads
        self._by_hash: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self._hash_of: dict[str, str] = {}
        self._pending: dict[str, float] = {}  # cost recorded but not yet committed, per key
        self._loaded_at = float("-inf")

    # -- the request path --------------------------------------------------------------
    def authenticate(self, token: str) -> ApiKey | None:
        """The active key for ``token``, or None (unknown or revoked)."""
        self._refresh_if_stale()
        key = self._by_hash.get(hash_token(token))
        if key is None or key.revoked_at is not None:
            return None
        return replace(key, spent_usd=self.spent_usd(key.id))

    def keys_enabled(self) -> bool:
        """True once any key was ever created (revoking all keys does not open the gateway)."""
        self._refresh_if_stale()
        return bool(self._by_id)

    def spent_usd(self, key_id: str) -> float:
        """Stored total plus what was recorded here and not yet written."""
        self._refresh_if_stale()
        with self._lock:
            key = self._by_id.get(key_id)
            return (key.spent_usd if key else 0.0) + self._pending.get(key_id, 0.0)

    def add_pending(self, key_id: str, cost_usd: float) -> None:
        with self._lock:
            self._pending[key_id] = self._pending.get(key_id, 0.0) + cost_usd

    def commit(self, write: Callable[[], dict[str, float]]) -> None:
        """Run a batch write and move its cost from pending to the stored totals.

        Holds ``_sync`` so a reload cannot read the new totals while the batch is still
        counted as pending (which would count it twice).
        """
        with self._sync:
            committed = write()
            self._settle(committed)

    def _settle(self, committed: dict[str, float]) -> None:
        with self._lock:
            for key_id, cost in committed.items():
                self._pending[key_id] = self._pending.get(key_id, 0.0) - cost
                key = self._by_id.get(key_id)
                if key is not None:
                    self._put(replace(key, spent_usd=key.spent_usd + cost))

    def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            self.reload()

    def reload(self) -> None:
        with self._sync, self._engine.connect() as conn:
            rows = list(conn.execute(select(tables.api_keys)))
            keys = [_from_row(r) for r in rows]
            hash_of = {r.id: r.key_hash for r in rows}
            with self._lock:
                self._by_id = {k.id: k for k in keys}
                self._by_hash = {hash_of[k.id]: k for k in keys}
                self._hash_of = hash_of
                self._loaded_at = time.monotonic()

    def get(self, key_id: str) -> ApiKey | None:
        """The cached key by id (limits as of the last reload)."""
        return self._by_id.get(key_id)

    def _put(self, key: ApiKey) -> None:
        self._by_id[key.id] = key
        self._by_hash[self._hash_of[key.id]] = key

    # -- administration ---------------------------------------------------------------
    def create(self, name: str, spend_limit_usd: float | None = None, *, rpm_limit: int | None = None,
               tpm_limit: int | None = None, kind: str = API) -> tuple[ApiKey, str]:
        """Store a new key; return it with its plaintext token, which is never stored."""
        if not name.strip():
            raise InputError("key name must not be empty")
        if kind not in KINDS:
            raise InputError(f"key kind must be one of {', '.join(KINDS)}, not {kind!r}")
        _check_limits(spend_limit_usd, rpm_limit, tpm_limit)
        token = new_token()
        key = ApiKey(id="key_" + secrets.token_hex(6), name=name.strip(), spend_limit_usd=spend_limit_usd,
                     spent_usd=0.0, created_at=utcnow(), rpm_limit=rpm_limit, tpm_limit=tpm_limit, kind=kind)
        with self._engine.begin() as conn:
            conn.execute(tables.api_keys.insert().values(
                id=key.id, name=key.name, key_hash=hash_token(token), spend_limit_usd=spend_limit_usd,
                spent_usd=0.0, reserved_usd=0.0, created_at=key.created_at, rpm_limit=rpm_limit, tpm_limit=tpm_limit,
                kind=kind,
            ))
            announce_key_change(conn)
        self.reload()
        return key, token

    def list(self) -> list[ApiKey]:
        self.reload()
        with self._lock:
            keys = sorted(self._by_id.values(), key=lambda k: (k.created_at or utcnow(), k.id))
        return [replace(k, spent_usd=self.spent_usd(k.id)) for k in keys]

    def update(self, key_id: str, *, spend_limit_usd: object = UNSET, rpm_limit: object = UNSET,
               tpm_limit: object = UNSET) -> ApiKey:
        """Change a key's limits; a setting given as None removes that limit, one not given stays."""
        _check_limits(spend_limit_usd, rpm_limit, tpm_limit)
        given = {"spend_limit_usd": spend_limit_usd, "rpm_limit": rpm_limit, "tpm_limit": tpm_limit}
        values = {name: value for name, value in given.items() if value is not UNSET}
        t = tables.api_keys
        with self._engine.begin() as conn:
            done = conn.execute(update(t).where(t.c.id == key_id).values(**values)) if values else None
            if done is None or done.rowcount == 0:
                if conn.execute(select(t.c.id).where(t.c.id == key_id)).first() is None:
                    raise InputError(f"no API key with id {key_id!r}")
            announce_key_change(conn)
        self.reload()
        return self._by_id[key_id]

    def revoke(self, key_id: str) -> ApiKey:
        t = tables.api_keys
        with self._engine.begin() as conn:
            done = conn.execute(update(t).where(t.c.id == key_id, t.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
            if done.rowcount == 0:
                exists = conn.execute(select(t.c.id).where(t.c.id == key_id)).first()
                if exists is None:
                    raise InputError(f"no API key with id {key_id!r}")
            announce_key_change(conn)
        self.reload()
        return self._by_id[key_id]


KEYS_CHANNEL = "calibroute_keys"


def announce_key_change(conn: Connection) -> None:
    """On PostgreSQL, tell every listening gateway (``gateway/keyrefresh.py``) to reload its keys
    when this transaction commits; SQLite gateways find the change at their next periodic reload."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": KEYS_CHANNEL})
