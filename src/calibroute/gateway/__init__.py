"""The OpenAI-compatible gateway: routed chat completions with budgets, streaming, fallbacks."""

from __future__ import annotations

from .app import create_app
from .settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
