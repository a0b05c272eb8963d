"""``POST /v1/messages``: the Anthropic Messages API over the chat-completions pipeline.

Requests are translated in ``anthropic_request``; here, the answers: a chat.completion
becomes a Message (thinking, text and tool_use blocks; Anthropic's stop reasons and
usage, cached prompt tokens as ``cache_read_input_tokens``), the relay's SSE becomes
Anthropic's event stream (message_start, ping, content_block_start / _delta / _stop per
block, message_delta with the stop reason and usage, message_stop), and errors take
Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ..config import Portfolio
from ..conversation import CHARS_PER_TOKEN, messages_text
from .anthropic_request import to_chat_body
from .dialects import answer_of, sse_events
from .errors import error_payload, retry_after_header, status_of
from .requests import ChatRequest, parse_chat
from .streaming import FinalChunk
from .thinking_signature import ThinkingSigner

if TYPE_CHECKING:
    from .chat import Outcome

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(exc: BaseException) -> dict[str, Any]:
    status = status_of(exc)
    kind = ERROR_TYPES.get(status) or ("invalid_request_error" if 400 <= status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": error_payload(exc)["error"]["message"]}}


def usage_of(out: Outcome) -> dict[str, Any]:
    """Anthropic usage: ``input_tokens`` excludes the prompt tokens read from the cache."""
    tally = out.tally
    if tally is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    cached = tally.cached_tokens
    return {"input_tokens": tally.prompt_tokens - cached, "output_tokens": tally.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def _arguments(text: Any) -> Any:
    try:
        value = json.loads(text) if isinstance(text, str) and text.strip() else {}
    except ValueError:
        return {"_raw": text}  # the model wrote invalid JSON: keep it visible rather than lose it
    return value if isinstance(value, dict) else {"value": value}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, **data}).encode() + b"\n\n"


class AnthropicDialect:
    native_api = "anthropic"

    def __init__(self, signer: ThinkingSigner | None = None) -> None:
        self.signer = signer or ThinkingSigner()

    def parse(self, obj: dict[str, Any], portfolio: Portfolio) -> ChatRequest:
        body, cap = to_chat_body(obj)
        chat = parse_chat(body, portfolio)
        return replace(chat, include_usage=True, hints=replace(chat.hints, thinking_tokens=cap), source=obj)

    def message(self, out: Outcome, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
        return {"id": "msg_" + out.request_id, "type": "message", "role": "assistant", "model": out.model or "",
                "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": usage_of(out)}

    def complete(self, chat: ChatRequest, data: dict[str, Any], out: Outcome) -> dict[str, Any]:
        thinking, text, calls, finish = answer_of(data)
        content: list[dict[str, Any]] = []
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": self.signer.sign(thinking)})
        if text:
            content.append({"type": "text", "text": text})
        for call in calls:
            fn = call.get("function") or {}
            content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{len(content)}",
                            "name": fn.get("name", ""), "input": _arguments(fn.get("arguments"))})
        return self.message(out, content, STOP_REASONS.get(finish, "end_turn"))

    def stream(self, chat: ChatRequest, chunks: AsyncIterator[bytes], out: Outcome) -> AsyncIterator[bytes]:
        return AnthropicStream(self, out).run(chunks)

    def error_response(self, exc: BaseException, headers: dict[str, str] | None = None) -> Response:
        if (retry_after := retry_after_header(exc)) is not None:
            headers = {**(headers or {}), "retry-after": retry_after}
        return Response(json.dumps(error_body(exc)), status_code=status_of(exc), headers=headers,
                        media_type="application/json")


    def error_event(self, exc: BaseException, last: dict[str, Any] | None) -> bytes:
        return _event("error", {"error": error_body(exc)["error"]})

    def native_answer(self, chat: ChatRequest, data: dict[str, Any]) -> None:
        return None


class AnthropicStream:
    """Chat-completion chunks -> Anthropic events; one content block open at a time."""

    def __init__(self, dialect: AnthropicDialect, out: Outcome) -> None:
        self.dialect, self.out = dialect, out
        self.index = -1
        self.open: str | None = None  # "thinking", "text" or "tool:<upstream index>"
        self.thinking: list[str] = []  # the open thinking block's text, signed when it closes
        self.finish_reason: str | None = None

    def _switch(self, key: str, block: dict[str, Any]) -> list[bytes]:
        if self.open == key:
            return []
        events = self._close()
        self.index += 1
        self.open = key
        events.append(_event("content_block_start", {"index": self.index, "content_block": block}))
        return events

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        events = []
        if self.open == "thinking":  # as Anthropic does: the signature arrives last, as a signature_delta
            signature = self.dialect.signer.sign("".join(self.thinking))
            self.thinking = []
            events.append(_event("content_block_delta", {"index": self.index, "delta": {
                "type": "signature_delta", "signature": signature}}))
        self.open = None
        events.append(_event("content_block_stop", {"index": self.index}))
        return events

    def translate(self, data: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thinking, str) and thinking:
                events += self._switch("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                self.thinking.append(thinking)
                events.append(_event("content_block_delta", {"index": self.index,
                                                             "delta": {"type": "thinking_delta", "thinking": thinking}}))
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._switch("text", {"type": "text", "text": ""})
                events.append(_event("content_block_delta", {"index": self.index,
                                                             "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                key = f"tool:{call.get('index', 0)}"
                if self.open != key:
                    events += self._switch(key, {"type": "tool_use", "id": call.get("id") or f"toolu_{self.index + 1}",
                                                 "name": fn.get("name", ""), "input": {}})
                if fn.get("arguments"):
                    events.append(_event("content_block_delta", {"index": self.index, "delta": {
                        "type": "input_json_delta", "partial_json": fn["arguments"]}}))
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return events

    def end(self) -> list[bytes]:
        stop = STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        return [*self._close(),
                _event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage_of(self.out)}),
                _event("message_stop", {})]

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        start = self.dialect.message(self.out, [], None)
        start["usage"] = {**start["usage"], "input_tokens": self.out.decision.input_tokens_est if self.out.decision else 0,
                          "output_tokens": 0}
        try:
            yield _event("message_start", {"message": start}) + _event("ping", {})
            async for chunk in chunks:
                events: list[bytes] = []
                for data in sse_events(chunk):
                    if data is None:
                        events += self.end()
                    elif "error" in data and not data.get("choices"):
                        events.append(_event("error", {"error": error_body_from(data)}))
                    else:
                        events += self.translate(data)
                out = b"".join(events)
                if isinstance(chunk, FinalChunk):
                    yield FinalChunk(out)
                elif out:
                    yield out
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


def error_body_from(data: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-format error event (from ``sse_error``) as Anthropic's error object."""
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    kind = err.get("type")
    return {"type": kind if kind in ERROR_TYPES.values() else "api_error", "message": str(err.get("message", "error"))}


def count_input_tokens(obj: dict[str, Any]) -> int:
    """``/v1/messages/count_tokens``: the gateway's estimate (characters / 4) of a Messages request's input,
    tool definitions included; it cannot know which backend tokenizer the route will pick."""
    body, _ = to_chat_body({**obj, "max_tokens": 1 << 30, "thinking": None})  # count_tokens takes neither
    text = messages_text(body["messages"]) + (json.dumps(body["tools"]) if body.get("tools") else "")
    return max(1, len(text) // CHARS_PER_TOKEN)


ANTHROPIC = AnthropicDialect()
