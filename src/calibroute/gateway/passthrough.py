"""Native pass-through: a ``/v1/messages`` or ``/v1/responses`` request routed to a backend that speaks that API.

Why: translating to chat completions and back loses what the API has and chat completions has
not (Anthropic's signed thinking blocks and cache_control, Responses' reasoning items and
built-in fields), and costs time. So the client's own body goes to the backend with only the
routed budget put in the API's own controls (``max_tokens`` + ``thinking.budget_tokens`` /
``output_config.effort``; ``max_output_tokens`` + ``reasoning.effort``), and the backend's answer
and events come back as they are. The gateway still reads them, through the backend API's
translator, to count tokens (cache reads included) for the ledger.

Parts of a conversation the gateway wrote itself are not the backend's to check: thinking blocks
it signed (``calibroute-v1.``) are dropped, and so are the ids of Responses items it made up
(``*_req_*``); a ``previous_response_id`` is expanded into the stored conversation (the backend
never saw the gateway's ids).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..backends.base import StreamEvent
from ..backends.chat_messages import split_system
from ..backends.responses_api import input_items
from ..budgets.translate import Translation
from ..errors import BackendError
from .requests import ChatRequest
from .streaming import Ending, FinalChunk, Tally
from .thinking_signature import ThinkingSigner

EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
OWN_ITEM = "_req_"  # in the ids of the Responses items the gateway wrote (rs_/msg_/fc_ + its request id)


def _limit(params: dict[str, Any]) -> Any:
    return params.get("max_tokens") or params.get("max_completion_tokens")


def anthropic_body(source: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in source.items() if k not in ("thinking", "stream")}
    body["max_tokens"] = _limit(params)
    if "thinking" in params:
        body["thinking"] = params["thinking"]
    config = {k: v for k, v in (source.get("output_config") or {}).items() if k != "effort"}
    if params.get("reasoning_effort") in EFFORTS:
        config["effort"] = EFFORTS[params["reasoning_effort"]]
    body.pop("output_config", None)
    if config:
        body["output_config"] = config
    body["messages"] = [_without_own_thinking(m) for m in source.get("messages") or []]
    return body


def _without_own_thinking(message: Any) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking"
                                       and ThinkingSigner.is_gateways(b.get("signature")))]
    return message if len(kept) == len(content) else {**message, "content": kept}


def responses_body(source: dict[str, Any], params: dict[str, Any], chat: ChatRequest) -> dict[str, Any]:
    body = {k: v for k, v in source.items() if k not in ("stream", "max_output_tokens", "reasoning")}
    body["max_output_tokens"] = _limit(params)
    if "reasoning_effort" in params:  # a model without reasoning takes no reasoning settings
        body["reasoning"] = {**{k: v for k, v in (source.get("reasoning") or {}).items() if k != "effort"},
                             "effort": params["reasoning_effort"]}
    if body.pop("previous_response_id", None) is not None:
        # the stored conversation, then this input; system turns stay out (instructions are per request)
        body["input"] = input_items(split_system(chat.body["messages"])[1])
    elif isinstance(body.get("input"), list):
        body["input"] = [_without_own_id(item) for item in body["input"] if not _own_reasoning(item)]
    return body


def _own_reasoning(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "reasoning" and OWN_ITEM in str(item.get("id", ""))


def _without_own_id(item: Any) -> Any:
    if not isinstance(item, dict) or OWN_ITEM not in str(item.get("id", "")):
        return item
    return {k: v for k, v in item.items() if k != "id"}


def native_body(api: str, chat: ChatRequest, tr: Translation) -> dict[str, Any]:
    """The client's own request for a backend speaking its API, with the routed budget in that API's controls."""
    assert chat.source is not None
    if api == "anthropic":
        return anthropic_body(chat.source, tr.params)
    return responses_body(chat.source, tr.params, chat)


def sse(event: StreamEvent) -> bytes:
    """A native event as the backend sent it: both APIs name each event by its ``type``."""
    raw = event.raw if event.raw is not None else json.dumps(event.data).encode()
    return b"event: " + str(event.data.get("type", "message")).encode() + b"\ndata: " + raw + b"\n\n"


async def relay_native(
    stream: Any,
    chunks: Any,
    tally: Tally,
    *,
    finish: Callable[[BaseException | None], None],
    error_event: Callable[[BaseException, dict[str, Any] | None], bytes],
    on_final: Callable[[dict[str, Any]], None],
    close: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The backend's events to the client unchanged, counted on the way (``chunks`` reads them as chat chunks);
    ``finish`` runs once, before the last bytes go out. An error event the backend sent is relayed as is and ends
    the stream; a failure of the stream itself ends it with ``error_event`` in the client's API."""
    end = Ending(close, finish)
    pending: list[bytes] = []
    last: dict[str, Any] | None = None
    try:
        failure: BaseException | None = None
        try:
            async for event in stream:
                pending.append(sse(event))
                last = event.data
                try:
                    for data in chunks.translate(event.data):
                        tally.see(data)
                except BackendError as exc:  # the backend's own error event: already on its way to the client
                    failure = exc
                    break
                if not stream.ready():
                    out, pending = b"".join(pending), []
                    yield out
        except Exception as exc:  # noqa: BLE001 - any failure after the first byte ends the stream with an error event
            await end(exc)
            yield FinalChunk(b"".join(pending) + error_event(exc, last))
            return
        if failure is None and chunks.final is not None:
            on_final(chunks.final)
        await end(failure)
        yield FinalChunk(b"".join(pending))
    except BaseException as exc:  # the client went away, or the generator was closed
        await end(exc)
        raise
