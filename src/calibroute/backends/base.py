"""The backend seam: one OpenAI-style chat call, whole or streamed.

A backend maps its upstream failures into ``calibroute.errors`` once (by status code
or transport error type), so the gateway's retry and fallback logic never looks at
upstream message text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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


def error_for_status(status: int, detail: str) -> BackendError:
    """Map an upstream HTTP error status to the calibroute error tree (the one place this happens)."""
    message = f"upstream returned HTTP {status}: {detail[:300]}" if detail else f"upstream returned HTTP {status}"
    if status == 429:
        return RateLimited(message, status=status)
    if status >= 500 or status == 408:
        return BackendUnavailable(message, status=status)
    if status in (401, 403):
        return BackendError(f"{message} (check the backend's api_key_env)", status=status, retryable=False)
    return UpstreamRejected(message, status=status)


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
