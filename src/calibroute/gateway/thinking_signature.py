"""Signatures for the thinking blocks the gateway writes on ``/v1/messages``.

Anthropic's ``signature`` is opaque to clients: they store it and send the thinking block back
unchanged on later turns (with tool use they must), and Anthropic's API checks it. A thinking
block the gateway builds from a backend's reasoning has no Anthropic signature, and an empty
one is what clients and other proxies treat as "unsigned" (some drop such blocks, some fail).
So the gateway signs the thinking text itself: ``calibroute-v1.`` + HMAC-SHA256 of the text
under a per-gateway key (``GatewaySettings.thinking_key``, ``$CALIBROUTE_THINKING_KEY``; a
random key per process when unset). On the way back the gateway can tell its own blocks
(the prefix) and whether the text is what it wrote (the HMAC); it never forwards its own
blocks to a backend as if they were Anthropic's (see ``anthropic_request``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "calibroute-v1."


class ThinkingSigner:
    def __init__(self, key: str | bytes | None = None) -> None:
        self.key = key.encode() if isinstance(key, str) else key or secrets.token_bytes(32)

    def sign(self, thinking: str) -> str:
        mac = hmac.new(self.key, thinking.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def verify(self, thinking: str, signature: str) -> bool:
        """True when this gateway's key signed exactly this text."""
        return isinstance(signature, str) and hmac.compare_digest(self.sign(thinking), signature)

    @staticmethod
    def is_gateways(signature: object) -> bool:
        """A signature written by a calibroute gateway (this one or another), not by Anthropic."""
        return isinstance(signature, str) and signature.startswith(PREFIX)
