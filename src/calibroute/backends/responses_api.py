"""The OpenAI Responses API seen from the chat-completions pipeline.

Why: a backend that speaks Responses natively (``api_style: responses``) gets ``/v1/responses``
requests passed through unchanged, but a chat-completions or Messages request routed to it
must be translated: the request (``request_from_chat``, always ``store: false`` with the whole
conversation as ``input``), the whole answer (``completion``) and the event stream
(``ResponseChunks``). The gateway also reads a native answer through these to count its tokens.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import BackendUnavailable
from .chat_messages import split_system, text_of

PATH = "/responses"


def headers(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def _user_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif isinstance(part, dict) and part.get("type") == "image_url":
            parts.append({"type": "input_image", "image_url": (part.get("image_url") or {}).get("url", "")})
    return parts


def input_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items for chat-completions messages (system turns already taken out)."""
    items: list[dict[str, Any]] = []
    for msg in messages:
        role, content = msg.get("role"), msg.get("content")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": str(msg.get("tool_call_id", "")), "output": text_of(content)})
        elif role == "assistant":
            if text_of(content):
                items.append({"type": "message", "role": "assistant", "content": text_of(content)})
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id", ""), "name": fn.get("name", ""),
                              "arguments": fn.get("arguments") or ""})
        else:
            items.append({"type": "message", "role": "user", "content": _user_content(content)})
    return items


def request_from_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request for a chat-completions body (budget parameters already translated by the gateway)."""
    system, rest = split_system(body.get("messages") or [])
    out: dict[str, Any] = {"input": input_items(rest), "store": False}
    if system:
        out["instructions"] = system
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        out["max_output_tokens"] = limit
    if body.get("reasoning_effort"):
        out["reasoning"] = {"effort": body["reasoning_effort"]}
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "prompt_cache_key", "metadata"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("tools"):
        out["tools"] = [{"type": "function", **(t.get("function") or {})} for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {"type": "function", "name": (choice.get("function") or {}).get("name", "")}
    elif choice is not None:
        out["tool_choice"] = choice
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["text"] = {"format": {"type": "json_object"}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    return out


def chat_usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}
    prompt, completion = u.get("input_tokens") or 0, u.get("output_tokens") or 0
    cached = (u.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": reasoning}}


def valid(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("output"), list)


def _finish(response: dict[str, Any], calls: bool) -> str:
    if response.get("status") == "incomplete":
        return "length" if (response.get("incomplete_details") or {}).get("reason") == "max_output_tokens" else "content_filter"
    return "tool_calls" if calls else "stop"


def completion(data: dict[str, Any]) -> dict[str, Any]:
    """A Response as a chat.completion: reasoning text as ``reasoning_content``, messages' text, function calls."""
    thinking, text, calls = [], [], []
    for item in data.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        parts = [p for p in (item.get("content") or []) + (item.get("summary") or []) if isinstance(p, dict)] if kind else []
        if kind == "reasoning":
            thinking += [str(p.get("text", "")) for p in parts]
        elif kind == "message":
            text += [str(p.get("text", "")) for p in parts if p.get("type") == "output_text"]
        elif kind == "function_call":
            calls.append({"id": item.get("call_id", ""), "type": "function",
                          "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return {"id": data.get("id", ""), "object": "chat.completion", "created": data.get("created_at") or int(time.time()),
            "model": data.get("model", ""), "choices": [{"index": 0, "message": message, "finish_reason": _finish(data, bool(calls))}],
            "usage": chat_usage(data.get("usage"))}


class ResponseChunks:
    """Responses stream events -> chat.completion.chunk dicts; ``final`` is the Response of the last event.
    ``response.failed`` and ``error`` events raise (a failure after the first byte)."""

    def __init__(self) -> None:
        self.base: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()), "model": ""}
        self.calls: dict[str, int] = {}  # function_call item id -> tool-call index
        self.final: dict[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = str(event.get("type"))
        if kind == "response.created":
            response = event.get("response") or {}
            self.base.update(id=response.get("id", ""), model=response.get("model", ""))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            item = event["item"]
            index = self.calls[str(item.get("id"))] = len(self.calls)
            return [self._chunk({"tool_calls": [{"index": index, "id": item.get("call_id", ""), "type": "function",
                                                 "function": {"name": item.get("name", ""), "arguments": ""}}]})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": event.get("delta", "")})]
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            return [self._chunk({"reasoning_content": event.get("delta", "")})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(str(event.get("item_id")), 0)
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": event.get("delta", "")}}]})]
        if kind in ("response.completed", "response.incomplete"):
            self.final = event.get("response") or {}
            return [self._chunk({}, _finish(self.final, bool(self.calls))),
                    {**self.base, "choices": [], "usage": chat_usage(self.final.get("usage"))}]
        if kind in ("response.failed", "error"):
            err = (event.get("response") or {}).get("error") or event
            raise BackendUnavailable(f"error event in stream: {err.get('message', 'response failed')}")
        return []
