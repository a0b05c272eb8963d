"""Relay a stream to the client chunk by chunk, and tally what it cost.

Upstream chunks go out as they arrive (their original bytes when unchanged); nothing is
buffered beyond one chunk. The upstream is always asked for ``include_usage`` so the
gateway can bill; the client gets a usage chunk only if it asked for one, with
``completion_tokens_details.reasoning_tokens`` filled in. A failure after the first byte
ends the stream with an OpenAI-style error event, then ``[DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from ..backends.base import StreamEvent
from ..backends.usage import cached_from_timings, cached_from_usage
from ..budgets.forcing import ThinkForcer, estimate_tokens
from .errors import sse_error

DONE = b"data: [DONE]\n\n"


class Tally:
    """Tokens seen in a response; upstream usage wins over estimates."""

    def __init__(self, prompt_estimate: int) -> None:
        self.prompt_estimate = prompt_estimate
        self.usage: dict[str, Any] | None = None
        self.reasoning_estimate = 0
        self.content_estimate = 0
        self.template: dict[str, Any] = {}
        self.cached_reported: int | None = None  # from the usage object (wins)
        self.cached_timings: int | None = None  # from llama.cpp's timings

    def see(self, data: dict[str, Any]) -> None:
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            cached = cached_from_usage(usage)
            if cached is not None:
                self.cached_reported = cached
        if "timings" in data:
            self.cached_timings = cached_from_timings(data)
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                self.reasoning_estimate += estimate_tokens(reasoning)
            content = delta.get("content")
            if isinstance(content, str):
                self.content_estimate += estimate_tokens(content)
        if not self.template and "id" in data:
            self.template = {k: data[k] for k in ("id", "created", "model", "system_fingerprint") if k in data}

    def adopt(self, forcer: ThinkForcer) -> None:
        """Take the summed upstream usage and the thinking count from a forcer; calls cut
        before their usage arrived count with estimates."""
        if forcer.usage or forcer.unreported_calls:
            usage = dict(forcer.usage)
            usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + forcer.unreported_calls * self.prompt_estimate
            usage["completion_tokens"] = usage.get("completion_tokens", 0) + forcer.unreported_tokens
            self.usage = usage
            if forcer.cached_tokens is not None:
                self.cached_reported = forcer.cached_tokens
        self.reasoning_estimate = forcer.think_tokens

    @property
    def prompt_tokens(self) -> int:
        value = (self.usage or {}).get("prompt_tokens")
        return value if isinstance(value, int) else self.prompt_estimate

    @property
    def completion_tokens(self) -> int:
        value = (self.usage or {}).get("completion_tokens")
        return value if isinstance(value, int) else self.content_estimate + self.reasoning_estimate

    @property
    def reasoning_tokens(self) -> int:
        details = (self.usage or {}).get("completion_tokens_details")
        upstream = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if isinstance(upstream, int) and upstream > 0:
            return min(upstream, self.completion_tokens)
        return min(self.reasoning_estimate, self.completion_tokens)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the backend read from its prompt cache (never more than the prompt)."""
        cached = self.cached_reported if self.cached_reported is not None else self.cached_timings
        return min(cached or 0, self.prompt_tokens)

    def usage_block(self) -> dict[str, Any]:
        p, c = self.prompt_tokens, self.completion_tokens
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}}


class FinalChunk(bytes):
    """The last bytes of a stream: the sender ends the response with them (one write less)."""


class Ending:
    """How a relayed stream ends, whichever way it does: the upstream closed (shielded from the client's
    cancellation) and ``finish`` called, exactly once."""

    def __init__(self, close: Callable[[], Awaitable[None]], finish: Callable[[BaseException | None], None]) -> None:
        self.close, self.finish, self.done = close, finish, False

    async def __call__(self, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            with anyio.CancelScope(shield=True):
                await self.close()
            self.finish(error)


async def relay(
    events: AsyncIterator[StreamEvent],
    close: Callable[[], Awaitable[None]],
    tally: Tally,
    *,
    include_usage: bool,
    forcer: ThinkForcer | None,
    finish: Callable[[BaseException | None], None],
    ready: Callable[[], bool] | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes for the client; ``finish`` runs exactly once, before the last event goes out
    (so the ledger row exists by the time the client has read ``[DONE]``).

    ``ready`` (the upstream has more already received) lets chunks that arrived together
    leave together: nothing waits for more data, so the relay stays chunk by chunk in time.
    """
    end = Ending(close, finish)
    pending: list[bytes] = []
    try:
        try:
            async for ev in events:
                tally.see(ev.data)
                if ev.data.get("choices"):  # else the upstream's usage chunk: ours follows, with reasoning tokens
                    pending.append(b"data: " + (ev.raw if ev.raw is not None else json.dumps(ev.data).encode()) + b"\n\n")
                if pending and (ready is None or not ready()):
                    out, pending = b"".join(pending), []
                    yield out
        except Exception as exc:  # a failure after the first byte: end the stream with an error event
            await end(exc)
            yield FinalChunk(b"".join(pending) + sse_error(exc) + DONE)
            return
        if forcer is not None:
            tally.adopt(forcer)
        await end(None)
        if include_usage:
            chunk = {**tally.template, "object": "chat.completion.chunk", "choices": [], "usage": tally.usage_block()}
            pending.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        yield FinalChunk(b"".join(pending) + DONE)
    except BaseException as exc:  # the client went away (cancellation) or the generator was closed
        await end(exc)
        raise


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Add one streamed tool-call delta (keyed by its index; arguments arrive in pieces) to ``calls``."""
    index = delta.get("index", 0)
    call = calls.setdefault(index if isinstance(index, int) else 0,
                            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(delta.get("id"), str):
        call["id"] = delta["id"]
    fn = delta.get("function") or {}
    if isinstance(fn.get("name"), str):
        call["function"]["name"] += fn["name"]
    if isinstance(fn.get("arguments"), str):
        call["function"]["arguments"] += fn["arguments"]


async def assemble(events: AsyncIterator[StreamEvent], tally: Tally, forcer: ThinkForcer | None) -> dict[str, Any]:
    """A non-streamed chat.completion built from a stream (used when forcing needs the stream): content, the
    backend's separate reasoning, and tool calls (their argument pieces joined)."""
    parts: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    async for ev in events:
        tally.see(ev.data)
        for choice in ev.data.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                parts.append(content)
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str):
                reasoning.append(thought)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    _merge_tool_call(calls, call)
            finish_reason = choice.get("finish_reason") or finish_reason
    if forcer is not None:
        tally.adopt(forcer)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(parts) if parts or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {
        "id": tally.template.get("id", "chatcmpl-calibroute"),
        "object": "chat.completion",
        "created": tally.template.get("created", int(time.time())),
        "model": tally.template.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason or "stop"}],
        "usage": tally.usage_block(),
    }
