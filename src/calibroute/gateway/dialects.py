"""The client APIs the gateway speaks, each as a translation around one chat-completions pipeline.

Why: routing, budgets, fallbacks, spend and rate limits, and the ledger live once, in
``Gateway.chat``, on chat-completions bodies. A dialect turns its API's request into a
``ChatRequest`` and the pipeline's answer (a chat.completion, or the relay's SSE bytes)
back into its own shapes, errors included. ``CHAT`` is the identity.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import Response

from ..config import Portfolio
from .errors import error_response, sse_error
from .requests import ChatRequest, parse_chat

if TYPE_CHECKING:
    from .chat import Outcome


class Dialect(Protocol):
    native_api: str | None  # the backend api_style that speaks this API itself (requests then pass through natively)

    def parse(self, obj: dict[str, Any], portfolio: Portfolio) -> ChatRequest:
        """The client's JSON body as a chat-completions request; InputError when it is not valid."""

    def complete(self, chat: ChatRequest, data: dict[str, Any], out: Outcome) -> dict[str, Any]:
        """The upstream chat.completion (usage already settled) as this API's response body."""

    def stream(self, chat: ChatRequest, chunks: AsyncIterator[bytes], out: Outcome) -> AsyncIterator[bytes]:
        """The relay's OpenAI SSE bytes as this API's event stream; closing it closes ``chunks``."""

    def error_response(self, exc: BaseException, headers: dict[str, str] | None = None) -> Response:
        """An error before the first byte, in this API's format."""

    def error_event(self, exc: BaseException, last: dict[str, Any] | None) -> bytes:
        """A natively relayed stream's failure after the first byte, as this API's error event (``last``: the last event)."""

    def native_answer(self, chat: ChatRequest, data: dict[str, Any]) -> None:
        """A backend's native answer (whole, or the final object of its stream) went to the client."""


class ChatDialect:
    """OpenAI chat completions: the pipeline's own shapes, unchanged."""

    native_api = None

    def parse(self, obj: dict[str, Any], portfolio: Portfolio) -> ChatRequest:
        return parse_chat(obj, portfolio)

    def complete(self, chat: ChatRequest, data: dict[str, Any], out: Outcome) -> dict[str, Any]:
        return data

    def stream(self, chat: ChatRequest, chunks: AsyncIterator[bytes], out: Outcome) -> AsyncIterator[bytes]:
        return chunks

    def error_response(self, exc: BaseException, headers: dict[str, str] | None = None) -> Response:
        return error_response(exc, headers)

    def error_event(self, exc: BaseException, last: dict[str, Any] | None) -> bytes:
        return sse_error(exc)

    def native_answer(self, chat: ChatRequest, data: dict[str, Any]) -> None:
        return None


CHAT = ChatDialect()


def sse_events(chunk: bytes) -> Iterator[dict[str, Any] | None]:
    """The JSON payloads of the relay's ``data:`` events in one chunk; None for ``[DONE]``."""
    for block in chunk.split(b"\n\n"):
        if not block.startswith(b"data: "):
            continue
        payload = block[6:]
        if payload.strip() == b"[DONE]":
            yield None
            continue
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if isinstance(data, dict):
            yield data


def answer_of(data: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]], str]:
    """(thinking, text, tool calls, finish reason) of a chat.completion's first choice; missing parts empty."""
    choice = (data.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    thinking = msg.get("reasoning_content") or msg.get("reasoning")
    text = msg.get("content")
    return (thinking if isinstance(thinking, str) else "", text if isinstance(text, str) else "",
            list(msg.get("tool_calls") or ()), choice.get("finish_reason") or "stop")

