"""Every error leaves the gateway as OpenAI-format JSON: {"error": {message, type, param, code}}.

Handlers are found by walking the exception's class hierarchy (Starlette's way), so a
new CalibrouteError subclass needs no new handler. Anything unexpected is a 500 with a
generic message; client input is validated before it can get that far.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import CalibrouteError, InputError

log = logging.getLogger("calibroute.gateway")


class PayloadTooLarge(InputError):
    http_status = 413
    code = "payload_too_large"


class BodyTimeout(InputError):
    """The client did not finish sending its request body in time."""

    http_status = 408
    code = "request_timeout"


class ClientDisconnected(CalibrouteError):
    """The client went away before its answer was ready; nobody reads the response (nginx's 499)."""

    http_status = 499
    error_type = "invalid_request_error"
    code = "client_disconnected"


class DeadlineExceeded(CalibrouteError):
    """The gateway-wide ``request_timeout_s`` ran out, over every retry and fallback."""

    http_status = 504
    error_type = "api_error"
    code = "request_timeout"


class Unauthorized(CalibrouteError):
    http_status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class SpendLimitExceeded(CalibrouteError):
    http_status = 429
    error_type = "insufficient_quota"
    code = "spend_limit_exceeded"
    key_id: str | None = None  # recorded in the ledger row of the refused request


class RateLimited(CalibrouteError):
    """A client key over its requests or tokens per minute; the response carries Retry-After."""

    http_status = 429
    code = "rate_limit_exceeded"
    key_id: str | None = None

    def __init__(self, message: str, *, which: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.error_type = which  # OpenAI says "requests" or "tokens" here
        self.retry_after_s = retry_after_s


class NotFound(InputError):
    http_status = 404
    code = "not_found"


class Forbidden(InputError):
    """Not for this caller, whoever it is (e.g. an ordinary API key at the dashboard)."""

    http_status = 403
    code = "forbidden"


def error_payload(exc: BaseException, param: str | None = None) -> dict[str, Any]:
    if isinstance(exc, CalibrouteError):
        body = {"message": str(exc), "type": exc.error_type, "param": param, "code": exc.code}
    else:
        body = {"message": "internal error in the gateway", "type": "server_error", "param": None, "code": "internal_error"}
    return {"error": body}


def status_of(exc: BaseException) -> int:
    return exc.http_status if isinstance(exc, CalibrouteError) else 500


def retry_after_header(exc: BaseException) -> str | None:
    """``Retry-After`` (whole seconds) for an error that says when to come back, e.g. a backend's 429."""
    seconds = getattr(exc, "retry_after_s", None)
    return str(max(1, math.ceil(seconds))) if isinstance(seconds, (int, float)) else None


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    if not isinstance(exc, CalibrouteError):
        log.error("unhandled error in the gateway", exc_info=exc)
    if (retry_after := retry_after_header(exc)) is not None:
        headers = {**(headers or {}), "retry-after": retry_after}
    return Response(json.dumps(error_payload(exc)), status_code=status_of(exc), headers=headers,
                    media_type="application/json")


def sse_error(exc: BaseException) -> bytes:
    """The event that ends a stream that fails after it began (the openai client raises on it)."""
    return b"data: " + json.dumps(error_payload(exc)).encode() + b"\n\n"


async def handle_error(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the OpenAI error format."""
    status = int(getattr(exc, "status_code", 500))
    detail = str(getattr(exc, "detail", "")) or "error"
    body = {"error": {"message": f"{request.method} {request.url.path}: {detail}", "type": "invalid_request_error",
                      "param": None, "code": "not_found" if status == 404 else "method_not_allowed" if status == 405 else None}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")
