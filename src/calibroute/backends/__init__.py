"""Model backends, built from the portfolio through a plain registry keyed by ``api_style``.

Adding a backend style means one module plus one line in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..config import ModelSpec, Portfolio
from ..errors import ConfigError
from .base import Backend, RateLimited, StreamEvent, UpstreamRejected, UpstreamStream, error_for_status

# api_style -> "module:class"; the class takes a ModelSpec.
BACKENDS: dict[str, str] = {"openai": ".openai_compat:OpenAICompatBackend", "anthropic": ".native:AnthropicBackend",
                            "responses": ".native:ResponsesBackend"}


def backend_factory(api_style: str) -> Callable[[ModelSpec], Backend]:
    try:
        target = BACKENDS[api_style]
    except KeyError:
        raise ConfigError(f"unknown backend api_style {api_style!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module, _, attr = target.partition(":")
    factory: Callable[[ModelSpec], Backend] = getattr(import_module(module, __name__), attr)
    return factory


def build_backends(portfolio: Portfolio) -> dict[str, Backend]:
    """One backend (with its own connection pool) per configured model."""
    return {m.name: backend_factory(m.backend.api_style)(m) for m in portfolio.models}


__all__ = [
    "BACKENDS",
    "Backend",
    "RateLimited",
    "StreamEvent",
    "UpstreamRejected",
    "UpstreamStream",
    "backend_factory",
    "build_backends",
    "error_for_status",
]
