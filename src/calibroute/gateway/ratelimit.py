"""Per-key rate limits: requests per minute and tokens per minute, answered with 429 + Retry-After.

Algorithm: GCRA (the "generic cell rate algorithm", a token bucket kept as one timestamp per
bucket). A limit of L per minute lets a key burst up to L at once and refills at L/60 per
second; a request is admitted when both of its key's buckets have room, and the wait until
they would have is the exact ``Retry-After``. Tokens are charged in two steps: the router's
prompt estimate on admission, the rest (actual prompt + completion tokens, minus what was
charged) when the request ends, so a long answer puts the key in debt and its next request
waits; a prompt alone larger than the whole minute's budget is admitted on a full bucket.

Shared across processes and replicas through Redis when ``redis_url`` is set: one Lua
script checks and updates both buckets atomically, on Redis's clock. Without Redis (or
while it is unreachable: logged, then retried) each process keeps its own buckets, so N
processes admit up to N times the limit (docs/gateway.md says so).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .errors import RateLimited

log = logging.getLogger("calibroute.gateway")

WINDOW_S = 60.0
REDIS_RETRY_S = 5.0  # after a Redis failure, use the local buckets this long before trying again

# KEYS: requests bucket, tokens bucket. ARGV: rpm, tpm (0 = none), tokens. Returns {admitted, wait_s, which}.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window = 60.0
local function gcra(key, limit, cost)
  if limit <= 0 then return nil, -1 end
  if cost > limit then cost = limit end
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new = tat + cost * window / limit
  return new, new - now - window
end
local r_new, r_wait = gcra(KEYS[1], tonumber(ARGV[1]), 1)
local t_new, t_wait = gcra(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
if r_wait > 0 or t_wait > 0 then
  if r_wait >= t_wait then return {0, tostring(r_wait), 'requests'} end
  return {0, tostring(t_wait), 'tokens'}
end
if r_new then redis.call('SET', KEYS[1], tostring(r_new), 'PX', math.ceil((r_new - now) * 1000) + 1) end
if t_new then redis.call('SET', KEYS[2], tostring(t_new), 'PX', math.ceil((t_new - now) * 1000) + 1) end
return {1, '0', ''}
"""

# KEYS: tokens bucket. ARGV: tpm, tokens (negative: a refund). Moves the bucket's timestamp.
CHARGE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + tonumber(ARGV[2]) * 60.0 / tonumber(ARGV[1])
if new <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1)
return 1
"""


class LocalBuckets:
    """The same GCRA in this process only (no Redis); runs on the event loop, so no lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.tat: dict[str, float] = {}

    def _gcra(self, key: str, limit: int, cost: float, now: float) -> tuple[float | None, float]:
        if limit <= 0:
            return None, -1.0
        new = max(self.tat.get(key, now), now) + min(cost, limit) * WINDOW_S / limit
        return new, new - now - WINDOW_S

    def admit(self, key_id: str, rpm: int, tpm: int, tokens: int) -> tuple[bool, float, str]:
        now = self.clock()
        r_new, r_wait = self._gcra(key_id + ":r", rpm, 1, now)
        t_new, t_wait = self._gcra(key_id + ":t", tpm, tokens, now)
        if r_wait > 0 or t_wait > 0:
            return (False, r_wait, "requests") if r_wait >= t_wait else (False, t_wait, "tokens")
        if r_new is not None:
            self.tat[key_id + ":r"] = r_new
        if t_new is not None:
            self.tat[key_id + ":t"] = t_new
        return True, 0.0, ""

    def charge(self, key_id: str, tpm: int, tokens: int) -> None:
        now = self.clock()
        key = key_id + ":t"
        self.tat[key] = max(self.tat.get(key, now), now) + tokens * WINDOW_S / tpm


class RateLimiter:
    """Admission by each key's ``rpm_limit`` / ``tpm_limit`` (cached on the key ring)."""

    def __init__(self, ledger: Any, redis_url: str | None = None) -> None:
        self.keys = getattr(ledger, "keys", None)
        self.local = LocalBuckets()
        self.redis: Any = None
        self._redis_down_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()
        if redis_url:
            self.redis = _connect(redis_url)
            self._admit = self.redis.register_script(ADMIT_LUA)
            self._charge = self.redis.register_script(CHARGE_LUA)

    def limits(self, key_id: str | None) -> tuple[int, int]:
        key = self.keys.get(key_id) if key_id is not None and self.keys is not None else None
        return (key.rpm_limit or 0, key.tpm_limit or 0) if key is not None else (0, 0)

    async def admit(self, key_id: str | None, tokens: int) -> int | None:
        """Admit a request of about ``tokens`` prompt tokens or raise RateLimited; returns the
        tokens charged (to settle later), None when the key has no rate limit."""
        rpm, tpm = self.limits(key_id)
        if not (rpm or tpm):
            return None
        assert key_id is not None
        tokens = max(0, int(tokens))
        result = await self._shared("admit", key_id, rpm, tpm, tokens)
        admitted, wait, which = result if result is not None else self.local.admit(key_id, rpm, tpm, tokens)
        if not admitted:
            limit = rpm if which == "requests" else tpm
            exc = RateLimited(f"rate limit of {limit} {which} per minute reached for this API key; "
                              f"try again in {wait:.1f} s", which=which, retry_after_s=wait)
            exc.key_id = key_id
            raise exc
        return tokens if tpm else 0

    def settle(self, key_id: str | None, charged: int | None, used_tokens: int) -> None:
        """Charge what the request used beyond what admission charged (or refund the difference)."""
        if charged is None or key_id is None:
            return
        _, tpm = self.limits(key_id)
        delta = int(used_tokens) - charged
        if not tpm or not delta:
            return
        task = asyncio.get_running_loop().create_task(self._settle(key_id, tpm, delta))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, key_id: str, tpm: int, delta: int) -> None:
        if await self._shared("charge", key_id, tpm, delta) is None:
            self.local.charge(key_id, tpm, delta)

    async def _shared(self, op: str, key_id: str, *args: int) -> Any:
        """Run ``op`` on Redis; None when there is no Redis or it failed (then: local buckets)."""
        if self.redis is None or time.monotonic() < self._redis_down_until:
            return None
        base = f"calibroute:rl:{{{key_id}}}"  # one hash slot per key on a Redis cluster
        try:
            if op == "admit":
                admitted, wait, which = await self._admit(keys=[base + ":r", base + ":t"], args=list(args))
                return bool(int(admitted)), float(wait), which.decode() if isinstance(which, bytes) else str(which)
            return await self._charge(keys=[base + ":t"], args=list(args))
        except Exception as exc:  # unreachable, timed out, restarted: limit per process meanwhile
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            log.warning("rate limits: Redis unavailable (%s); per-process limits for %.0f s", exc, REDIS_RETRY_S)
            return None

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()


def _connect(url: str) -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("redis_url is set but the redis client is not installed (pip install 'calibroute[redis]')") from None
    return aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
