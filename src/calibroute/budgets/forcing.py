"""Budget forcing on the stream, for models that think in <think>...</think> with no native budget.

s1-style (Muennighoff et al., 2025): when the thinking reaches its budget, stop the
upstream generation, close the block with the end-of-thinking delimiter plus an answer
cue, and let the model continue from there; when thinking ends before a floor, suppress
the delimiter and append "Wait" so the model keeps thinking. The gateway cannot edit
logits of a remote server, so a cut is: close the upstream stream, then continue with an
assistant prefill holding everything said so far (vLLM/SGLang ``continue_final_message``;
llama.cpp's server continues a trailing assistant message on its own).

Tokens are estimated from text (about 4 characters per token, at least 1 per piece):
the gateway has no tokenizer for remote models. Upstream ``usage`` is summed over all
calls and stays the authority for completion tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import StreamEvent, UpstreamStream
from ..backends.usage import cached_from_usage
from .translate import ThinkLimits

BEFORE, INSIDE, AFTER = "before", "inside", "after"


def estimate_tokens(text: str) -> int:
    """Rough token count of a piece of text; a streamed delta is usually one token."""
    return max(1, round(len(text) / 4)) if text else 0


@dataclass(frozen=True)
class ForcingConfig:
    open_tag: str = "<think>"
    close_tag: str = "</think>"
    answer_cue: str = "Final Answer: "  # s1's cue after the forced end of thinking
    wait_cue: str = "Wait"
    max_waits: int = 2
    # Extra body fields that make a server continue the trailing assistant message.
    prefill_params: dict[str, Any] = field(
        default_factory=lambda: {"continue_final_message": True, "add_generation_prompt": False}
    )

    def no_think_prefix(self) -> str:
        return f"{self.open_tag}\n\n{self.close_tag}\n\n"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could start ``tag`` (held back until known)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkTagParser:
    """Splits streamed text into ('answer'|'think'|'open'|'close', text) pieces; tags may span deltas."""

    def __init__(self, open_tag: str, close_tag: str, state: str = BEFORE) -> None:
        self.open_tag, self.close_tag, self.state = open_tag, close_tag, state
        self._buf = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._buf += text
        while self._buf:
            if self.state == AFTER:
                out.append(("answer", self._buf))
                self._buf = ""
                break
            tag = self.open_tag if self.state == BEFORE else self.close_tag
            kind = "answer" if self.state == BEFORE else "think"
            i = self._buf.find(tag)
            if i >= 0:
                if i:
                    out.append((kind, self._buf[:i]))
                out.append(("open" if self.state == BEFORE else "close", tag))
                self._buf = self._buf[i + len(tag):]
                self.state = INSIDE if self.state == BEFORE else AFTER
                continue
            keep = _partial_suffix(self._buf, tag)
            if len(self._buf) > keep:
                out.append((kind, self._buf[: len(self._buf) - keep]))
                self._buf = self._buf[len(self._buf) - keep:]
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        """Whatever was held back as a possible tag start, at the end of the stream."""
        if not self._buf:
            return []
        piece = ("think" if self.state == INSIDE else "answer", self._buf)
        self._buf = ""
        return [piece]


Opener = Callable[[dict[str, Any]], Awaitable[UpstreamStream]]


def initial_body(body: dict[str, Any], limits: ThinkLimits, cfg: ForcingConfig) -> dict[str, Any]:
    """The first upstream request: with thinking off (budget 0), prefill an empty think block."""
    if limits.max_tokens != 0:
        return body
    messages = [*body["messages"], {"role": "assistant", "content": cfg.no_think_prefix()}]
    return {**body, **cfg.prefill_params, "messages": messages}


class ThinkForcer:
    """Relays a think-tag stream under ``limits``; iterating yields the client's chunks.

    ``first`` is the already-open upstream stream for ``body`` (as sent, see ``initial_body``);
    ``reopen`` starts each continuation on the same backend.
    """

    def __init__(self, first: UpstreamStream, reopen: Opener, body: dict[str, Any], limits: ThinkLimits,
                 cfg: ForcingConfig = ForcingConfig()) -> None:
        self.limits, self.cfg = limits, cfg
        self._stream: UpstreamStream | None = first
        self._current: UpstreamStream | None = first
        self._reopen, self._body = reopen, body
        hidden = cfg.no_think_prefix() if limits.max_tokens == 0 else ""
        self._prefix = hidden  # prefilled but never shown to the client
        self.transcript = ""  # content shown to the client so far
        self.parser = ThinkTagParser(cfg.open_tag, cfg.close_tag, AFTER if hidden else BEFORE)
        self.think_tokens = 0
        self.answer_tokens = 0
        self.waits = 0
        self.forced_close = False
        self.calls = 1
        self.usage: dict[str, int] = {}  # summed over the upstream calls that reported usage
        self.cached_tokens: int | None = None  # cached prompt tokens, summed over the calls that reported them
        self.unreported_calls = 0  # calls cut before their usage arrived ...
        self.unreported_tokens = 0  # ... and the output tokens they generated (estimated)
        self._call_tokens = 0
        self._call_usage = False
        max_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        self._max_key, self._max_total = max_key, body.get(max_key)

    # -- the stream -------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        template: dict[str, Any] = {}
        while self._stream is not None:
            stream, self._stream = self._stream, None
            self._current = stream
            self._call_tokens, self._call_usage = 0, False
            async for ev in stream:
                self._add_usage(ev.data.get("usage"))
                if (cached := cached_from_usage(ev.data.get("usage"))) is not None:
                    self.cached_tokens = (self.cached_tokens or 0) + cached
                choices = ev.data.get("choices") or []
                if not choices:
                    continue  # a usage-only chunk: the relay reports the sum at the end
                template = ev.data
                choice = choices[0]
                text = (choice.get("delta") or {}).get("content")
                self._call_tokens += estimate_tokens(text or "")
                if not text:
                    if choice.get("finish_reason"):
                        if (tail := self._emit(self.parser.flush())[0]):
                            yield self._chunk(template, tail)
                        yield ev
                    elif self.calls == 1:
                        yield ev  # the role chunk; continuations' role chunks are dropped
                    continue
                emitted, prefill_tail = self._emit(self.parser.feed(text))
                if prefill_tail is None and emitted == text:
                    yield ev
                    continue
                if emitted:
                    yield self._chunk(template, emitted)
                if prefill_tail is not None:
                    await stream.aclose()
                    if not self._call_usage:
                        self.unreported_calls += 1
                        self.unreported_tokens += self._call_tokens
                    yield self._chunk(template, prefill_tail)
                    self.transcript += prefill_tail
                    self._stream = await self._continue()
                    break
            else:
                if (tail := self._emit(self.parser.flush())[0]):
                    yield self._chunk(template, tail)

    def _emit(self, pieces: list[tuple[str, str]]) -> tuple[str, str | None]:
        """Account for parsed pieces; return (text to show, continuation tail or None)."""
        out: list[str] = []
        limits = self.limits
        for kind, text in pieces:
            if kind == "think":
                tokens = estimate_tokens(text)
                if limits.max_tokens is not None and self.think_tokens + tokens > limits.max_tokens:
                    allowed = max(0, limits.max_tokens - self.think_tokens)
                    part = text[: allowed * 4]
                    out.append(part)
                    self.think_tokens += estimate_tokens(part)
                    self.forced_close = True
                    self.parser.state = AFTER
                    self.transcript += "".join(out)
                    return "".join(out), f"\n{self.cfg.close_tag}\n\n{self.cfg.answer_cue}"
                self.think_tokens += tokens
                out.append(text)
            elif kind == "close" and self.think_tokens < limits.min_tokens and self.waits < self.cfg.max_waits:
                self.waits += 1
                wait = f"\n{self.cfg.wait_cue}"
                self.think_tokens += estimate_tokens(wait)
                self.parser.state = INSIDE
                self.transcript += "".join(out)
                return "".join(out), wait
            else:
                if kind == "answer":
                    self.answer_tokens += estimate_tokens(text)
                out.append(text)
        emitted = "".join(out)
        self.transcript += emitted
        return emitted, None

    async def _continue(self) -> UpstreamStream:
        self.calls += 1
        messages = [*self._body["messages"], {"role": "assistant", "content": self._prefix + self.transcript}]
        body = {**self._body, **self.cfg.prefill_params, "messages": messages}
        if isinstance(self._max_total, int):
            body[self._max_key] = max(1, self._max_total - self.think_tokens - self.answer_tokens)
        return await self._reopen(body)

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self._call_usage = True
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if isinstance(usage.get(key), int):
                self.usage[key] = self.usage.get(key, 0) + usage[key]

    @staticmethod
    def _chunk(template: dict[str, Any], content: str) -> StreamEvent:
        data = {k: v for k, v in template.items() if k not in ("choices", "usage")}
        data["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
        return StreamEvent(data)

    async def aclose(self) -> None:
        for stream in {id(s): s for s in (self._current, self._stream) if s is not None}.values():
            await stream.aclose()
        self._current = self._stream = None
