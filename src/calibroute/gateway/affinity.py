"""Conversation affinity: keep an agent's conversation on the model it started with.

Why: an agent sends the same growing conversation many times. Routing each turn afresh can
bounce it between models, which throws away the provider's prompt cache (cached input costs
a fraction of fresh input) and can send a tool result to a model that never made the call.
So a conversation keeps its model; it may move only upward (to a model with a higher output
price, i.e. an escalation), and a turn that answers a tool call never moves.

The key is the client's own conversation id when it sends one (``prompt_cache_key``, or
``user`` / Anthropic's ``metadata.user_id``, which agents set per session), else a hash of
the conversation's first messages (system prompt and first user turn: the same for every
turn of one conversation). Pins live in memory, per process, bounded and expiring.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from ..config import Portfolio
from ..types import Decision


def conversation_key(body: dict[str, Any], source: dict[str, Any] | None = None) -> str:
    """The client's conversation id when given, else a hash of the first system and user messages."""
    for where in (source or {}, body):
        for field in ("prompt_cache_key", "user"):
            value = where.get(field)
            if isinstance(value, str) and value:
                return f"{field}:{value}"
    messages = body.get("messages") or []
    head = [m for m in messages if m.get("role") == "system"][:1] + [m for m in messages if m.get("role") == "user"][:1]
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"head:{digest}"


def answers_a_tool_call(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and messages[-1].get("role") == "tool"


class Affinity:
    """Pins conversation key -> model; ``apply`` adjusts a routed Decision to keep the conversation on its model."""

    def __init__(self, portfolio: Portfolio, *, capacity: int = 100_000, ttl_s: float = 3600.0) -> None:
        self.portfolio, self.capacity, self.ttl_s = portfolio, capacity, ttl_s
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.kept = 0  # turns moved back onto their conversation's model
        self.escalated = 0  # conversations that moved up

    def rank(self, model: str) -> float:
        spec = self.portfolio.model(model)
        return spec.output_usd_per_mtok + spec.input_usd_per_mtok / 1000  # output price first; input breaks ties

    def pinned(self, key: str) -> str | None:
        with self._lock:
            entry = self._pins.get(key)
            if entry is None or time.monotonic() - entry[1] > self.ttl_s:
                return None
            return entry[0]

    def pin(self, key: str, model: str) -> None:
        with self._lock:
            self._pins[key] = (model, time.monotonic())
            self._pins.move_to_end(key)
            while len(self._pins) > self.capacity:
                self._pins.popitem(last=False)

    def apply(self, key: str, decision: Decision, *, tool_turn: bool) -> Decision:
        """The decision for this turn: the routed one, unless the conversation is pinned to a model it would leave
        sideways or downward (or this turn answers a tool call, which stays where the call was made)."""
        if decision.rule == "explicit_model":
            return decision  # the client chose the model itself
        current = self.pinned(key)
        names = {m.name for m in self.portfolio.models}
        if current is None or current not in names or current == decision.model:
            self.pin(key, decision.model)
            return decision
        if not tool_turn and self.rank(decision.model) > self.rank(current):
            self.escalated += 1
            self.pin(key, decision.model)
            return decision
        self.kept += 1
        self.pin(key, current)
        fallbacks = [m for m in [decision.model, *decision.fallbacks] if m != current]
        cost = self.portfolio.model(current).cost_usd(decision.input_tokens_est, decision.budget.max_output_tokens)
        why = "answers a tool call made by" if tool_turn else "conversation stays on"
        return replace(decision, model=current, fallbacks=fallbacks, estimated_cost_usd=cost, rule="affinity",
                       rules=[*decision.rules, "affinity"], reason=f"{decision.reason}; {why} {current}")
