"""Backends that speak the Anthropic Messages or the OpenAI Responses API instead of chat completions.

Why two faces: the gateway passes a request of the backend's own API through natively
(``native_complete`` / ``native_stream``: the client's body, budget-adjusted, and the
backend's own answer and events), and every other request (chat completions, or the other
agent API) reaches it through the ``Backend`` protocol, translated here both ways by the API's
module (``anthropic_api`` / ``responses_api``). Transport, timeouts, error mapping and the SSE
reader are the OpenAI-compatible backend's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from ..errors import BackendUnavailable
from . import anthropic_api, responses_api
from .base import StreamEvent
from .openai_compat import OpenAICompatBackend, OpenAIStream


class TranslatedStream:
    """A native event stream read as chat.completion.chunk events."""

    def __init__(self, inner: OpenAIStream, chunks: Any) -> None:
        self.inner, self.chunks = inner, chunks

    def ready(self) -> bool:
        return self.inner.ready()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for event in self.inner:
            for data in self.chunks.translate(event.data):
                yield StreamEvent(data)

    async def aclose(self) -> None:
        await self.inner.aclose()


class NativeBackend(OpenAICompatBackend):
    api_name: str
    api: ModuleType

    def auth_headers(self, key: str | None) -> dict[str, str]:  # type: ignore[override]
        return self.api.headers(key)  # type: ignore[no-any-return]

    def chunks(self) -> Any:
        """A fresh translator of this API's stream events into chat.completion.chunk dicts."""
        return anthropic_api.MessageChunks() if self.api is anthropic_api else responses_api.ResponseChunks()

    async def native_complete(self, body: dict[str, Any]) -> dict[str, Any]:
        data = await self.fetch_json(body)
        if not self.api.valid(data):
            raise BackendUnavailable(f"{self.name}: not a {self.api_name} answer")
        return data  # type: ignore[no-any-return]

    async def native_stream(self, body: dict[str, Any]) -> OpenAIStream:
        return await OpenAICompatBackend.open_stream(self, body)

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.api.completion(await self.native_complete(self.api.request_from_chat(body)))  # type: ignore[no-any-return]

    async def open_stream(self, body: dict[str, Any]) -> TranslatedStream:  # type: ignore[override]
        return TranslatedStream(await self.native_stream(self.api.request_from_chat(body)), self.chunks())


class AnthropicBackend(NativeBackend):
    """``api_style: anthropic``: ``{base_url}/messages``, ``x-api-key`` and ``anthropic-version`` headers."""

    api_name, api, path = "anthropic", anthropic_api, anthropic_api.PATH


class ResponsesBackend(NativeBackend):
    """``api_style: responses``: ``{base_url}/responses``, bearer key."""

    api_name, api, path = "responses", responses_api, responses_api.PATH
