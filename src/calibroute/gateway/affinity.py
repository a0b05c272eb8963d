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

import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
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


def conversation_tokens(body: dict[str, Any]) -> int:
    """The prompt size of a request, estimated (characters / 4 of its messages and tools): what a prefix cache holds."""
    size = len(json.dumps(body.get("messages") or [], default=str))
    if body.get("tools"):
        size += len(json.dumps(body["tools"], default=str))
    return size // 4


@dataclass
class Pin:
    model: str
    seen: float  # monotonic time of the last turn
    sent: dict[str, int] = dataclasses.field(default_factory=dict)  # model -> prompt tokens it last saw (its cached prefix)


class Affinity:
    """Pins conversation key -> model; ``apply`` adjusts a routed Decision to keep the conversation on its model.

    A turn routed below the pinned model moves down only when that is cheaper for the turn even so: the
    pinned model's price with the conversation read from its cache, against the routed model's with what
    its own cache holds of the conversation (nothing, unless the conversation was there before). So a
    conversation stays among models of similar price (the cache wins) and leaves a far dearer model it
    escalated to once its turns are cheap again (the price wins): affinity never makes a turn dearer
    than routing it afresh, by the gateway's estimate (``typical_output_tokens`` of output per turn).
    ``release=False`` keeps every conversation where it climbed to (escalations only), whatever it costs.
    """

    def __init__(self, portfolio: Portfolio, *, capacity: int = 100_000, ttl_s: float = 3600.0,
                 typical_output_tokens: int = 200, release_ratio: float = 2.0, jump: bool = True,
                 release: bool = True) -> None:
        self.portfolio, self.capacity, self.ttl_s, self.jump, self.release = portfolio, capacity, ttl_s, jump, release
        self.typical_output_tokens, self.release_ratio = typical_output_tokens, release_ratio
        self._pins: OrderedDict[str, Pin] = OrderedDict()
        self._lock = threading.Lock()
        self.kept = 0  # turns moved back onto their conversation's model
        self.escalated = 0  # conversations that moved up
        self.released = 0  # conversations that moved down because staying cost more

    def rank(self, model: str) -> float:
        """A model's strength as the portfolio prices it: its output price. Equal prices are a sideways move."""
        return self.portfolio.model(model).output_usd_per_mtok

    def pinned(self, key: str) -> str | None:
        with self._lock:
            pin = self._pins.get(key)
            return None if pin is None or time.monotonic() - pin.seen > self.ttl_s else pin.model

    def _pin(self, key: str, model: str, tokens: int) -> None:
        with self._lock:
            pin = self._pins.get(key)
            if pin is None or time.monotonic() - pin.seen > self.ttl_s:
                pin = self._pins[key] = Pin(model, 0.0)
            pin.model, pin.seen = model, time.monotonic()
            pin.sent[model] = tokens
            self._pins.move_to_end(key)
            while len(self._pins) > self.capacity:
                self._pins.popitem(last=False)

    def pin(self, key: str, model: str) -> None:
        self._pin(key, model, 0)

    def cached_share(self, key: str, model: str, tokens: int) -> float:
        """The share of a ``tokens``-long conversation that ``model``'s cache holds (what it last saw of it)."""
        with self._lock:
            pin = self._pins.get(key)
            sent = pin.sent.get(model, 0) if pin is not None else 0
        return min(1.0, sent / tokens) if tokens > 0 else 0.0

    def turn_cost(self, key: str, model: str, tokens: int) -> float:
        """This turn's estimated cost on ``model``, its cache holding what it last saw of the conversation."""
        with self._lock:
            pin = self._pins.get(key)
            cached = min(tokens, pin.sent.get(model, 0)) if pin is not None else 0
        return self.portfolio.model(model).cost_usd(tokens, self.typical_output_tokens, cached)

    def apply(self, key: str, decision: Decision, *, tool_turn: bool, tokens: int = 0) -> Decision:
        """The decision for this turn (``tokens``: the conversation's size so far): the routed one, unless the
        conversation is pinned to a model it would leave sideways or downward while staying is cheaper (or
        this turn answers a tool call, which stays where the call was made)."""
        if decision.rule == "explicit_model":
            return decision  # the client chose the model itself
        current = self.pinned(key)
        names = {m.name for m in self.portfolio.models}
        if current is None or current not in names or current == decision.model:
            self._pin(key, decision.model, tokens)
            return decision
        if not tool_turn and self.rank(decision.model) > self.rank(current):
            self.escalated += 1
            decision = self.climb(key, decision, tokens) if self.jump else decision
            self._pin(key, decision.model, tokens)
            return decision
        why = "answers a tool call made by" if tool_turn else "conversation stays on"
        target = current
        if not tool_turn and self.release:  # release off: escalations only, a conversation never moves down
            landing = self.landing(key, decision.model, current, tokens)
            if self.turn_cost(key, current, tokens) > self.release_ratio * self.turn_cost(key, landing, tokens):
                self.released += 1
                if landing == decision.model:
                    self._pin(key, landing, tokens)
                    return decision
                target, why = landing, "conversation moves down to its cached"
        self.kept += 1
        self._pin(key, target, tokens)
        fallbacks = [m for m in [decision.model, *decision.fallbacks] if m != target]
        cost = self.portfolio.model(target).cost_usd(decision.input_tokens_est, decision.budget.max_output_tokens)
        return replace(decision, model=target, fallbacks=fallbacks, estimated_cost_usd=cost, rule="affinity",
                       rules=[*decision.rules, "affinity"], reason=f"{decision.reason}; {why} {target}")

    def climb(self, key: str, decision: Decision, tokens: int) -> Decision:
        """A conversation that must climb goes straight to the highest rung of the routed route's escalation ladder
        that the release rule would keep it on (this turn's estimated cost there within ``release_ratio`` of the
        routed model's): one climb instead of one per class change, never to a model it would leave at once."""
        ladder = self.portfolio.routes[decision.task_class.value].ladder
        ceiling = self.release_ratio * self.turn_cost(key, decision.model, tokens)
        higher = [m for m in ladder if self.rank(m) > self.rank(decision.model) and self.turn_cost(key, m, tokens) <= ceiling]
        if not higher:
            return decision
        top = max(higher, key=self.rank)
        fallbacks = [m for m in [decision.model, *decision.fallbacks] if m != top]
        cost = self.portfolio.model(top).cost_usd(decision.input_tokens_est, decision.budget.max_output_tokens)
        return replace(decision, model=top, fallbacks=fallbacks, estimated_cost_usd=cost, rule="affinity",
                       rules=[*decision.rules, "affinity"], reason=f"{decision.reason}; conversation climbs once, to {top}")

    def landing(self, key: str, routed: str, current: str, tokens: int) -> str:
        """Where a conversation leaving ``current`` goes: the cheapest for this turn of the routed model and the
        models between it and ``current`` the conversation has been on (their caches hold most of it)."""
        with self._lock:
            pin = self._pins.get(key)
            visited = list(pin.sent) if pin is not None else []
        low, high = self.rank(routed), self.rank(current)
        names = {m.name for m in self.portfolio.models}
        options = [routed, *(m for m in visited if m in names and low <= self.rank(m) < high and m != routed)]
        return min(options, key=lambda m: self.turn_cost(key, m, tokens))
