"""Every error calibroute raises on purpose, in one tree.

    CalibrouteError
     ├── ConfigError          a portfolio file or setting is invalid (names file, field, line)
     ├── InputError           a prompt, request or input file is unusable
     ├── UnknownModelError    a name that is not a configured model or alias
     ├── ArtifactError        a shipped or trained artifact is missing or corrupt
     ├── DataError            a dataset file is malformed (names file, row, column)
     └── BackendError         an upstream model server failed
          ├── BackendTimeout
          └── BackendUnavailable   connect error, 5xx, 429, or circuit open

The CLI prints ``str(error)`` as one line; the gateway maps each class to an
OpenAI-format error body with ``http_status`` and ``error_type``.
"""

from __future__ import annotations


class CalibrouteError(Exception):
    """Base of all deliberate errors; ``str()`` is a one-line message for humans."""

    http_status: int = 500
    error_type: str = "server_error"
    code: str | None = None


class ConfigError(CalibrouteError, ValueError):
    http_status = 500
    error_type = "server_error"
    code = "config_error"


class InputError(CalibrouteError, ValueError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "invalid_input"


class UnknownModelError(InputError):
    http_status = 404
    code = "model_not_found"

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = sorted(known or [])
        hint = f"; known: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown model {name!r}{hint}")


class ArtifactError(CalibrouteError):
    code = "artifact_error"


class DataError(CalibrouteError, ValueError):
    code = "data_error"


class BackendError(CalibrouteError):
    """An upstream failure; ``retryable`` says whether a retry or fallback may help."""

    http_status = 502
    error_type = "api_error"
    code = "backend_error"
    retryable: bool = False
    retry_after_s: float | None = None  # the upstream's Retry-After, when it sent one

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class BackendTimeout(BackendError):
    http_status = 504
    code = "backend_timeout"
    retryable = True


class BackendUnavailable(BackendError):
    http_status = 503
    code = "backend_unavailable"
    retryable = True
