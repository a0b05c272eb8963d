"""The backend seam: one OpenAI-style chat call, whole or streamed.

A backend maps its upstream failures into ``calibroute.errors`` once (by status code
or transport error type), so the gateway's retry and fallback logic never looks at
upstream message text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from ..errors import BackendError, BackendUnavailable


@dataclass(slots=True)
class StreamEvent:
    """One streamed chunk: the parsed JSON, and the upstream bytes to forward when unchanged."""

    data: dict[str, Any]
    raw: bytes | None = None


class UpstreamRejected(BackendError):
    """The upstream refused the request itself (a 4xx other than 429): not retryable.

    The gateway answers with the upstream's status so the client sees its own mistake.
    """

    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status, retryable=False)
        self.http_status = status


class RateLimited(BackendUnavailable):
    """The upstream said 429: retry later or elsewhere."""

    http_status = 429
    error_type = "rate_limit_error"
    code = "backend_rate_limited"


def error_for_status(status: int, detail: str, retry_after: str | None = None) -> BackendError:
    """Map an upstream HTTP error status to the calibroute error tree (the one place this happens)."""
    message = f"upstream returned HTTP {status}: {detail[:300]}" if detail else f"upstream returned HTTP {status}"
    error: BackendError
    if status == 429:
        error = RateLimited(message, status=status)
    elif status >= 500 or status == 408:
        error = BackendUnavailable(message, status=status)
    elif status in (401, 403):
        return BackendError(f"{message} (check the backend's api_key_env)", status=status, retryable=False)
    else:
        return UpstreamRejected(message, status=status)
    error.retry_after_s = parse_retry_after(retry_after)
    return error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def plausible_usage(usage: Any, limit: int) -> dict[str, Any] | None:
    """The upstream's ``usage`` without counts no call can have (negative, not an integer, or over
    ``limit``, the model's context window): the gateway estimates a missing count instead of
    billing a broken one. The dict is returned unchanged when every count is plausible."""
    if not isinstance(usage, dict):
        return None

    def ok(value: Any) -> bool:
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit)

    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if all(ok(usage.get(k)) for k in USAGE_COUNTS) and ok(reasoning):
        return usage
    clean = {k: v for k, v in usage.items() if k not in USAGE_COUNTS or ok(v)}
    if isinstance(details, dict) and not ok(reasoning):
        clean["completion_tokens_details"] = {k: v for k, v in details.items() if k != "reasoning_tokens"}
    return clean


@runtime_checkable
class UpstreamStream(Protocol):
    """An open streamed response. Iterating may raise BackendError (a failure mid-stream).

    Optionally ``ready() -> bool``: the next event is already received (the gateway then
    sends events that arrived together in one write)."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """An OpenAI-compatible chat completions endpoint for one model."""

    name: str

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed completion; raises BackendError."""
        ...

    async def open_stream(self, body: dict[str, Any]) -> UpstreamStream:
        """Start a streamed completion and wait for its first event, so that every failure
        before the first byte (connect, status, timeout) raises here, where a retry or a
        fallback is still invisible to the client."""
        ...

    async def aclose(self) -> None: ...
