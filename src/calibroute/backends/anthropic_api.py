"""The Anthropic Messages API seen from the chat-completions pipeline.

Why: a backend that speaks Messages natively (``api_style: anthropic``) gets ``/v1/messages``
requests passed through unchanged, but a chat-completions or Responses request routed to it
must be translated: the request (``request_from_chat``), the whole answer (``completion``)
and the event stream (``MessageChunks``: one Messages event -> chat.completion.chunk dicts).
The gateway also reads a native answer through these to count its tokens for the ledger.

Usage: Anthropic's ``input_tokens`` excludes the prompt read from or written to the cache, so
``prompt_tokens`` = input + cache reads + cache writes, and ``cached_tokens`` = cache reads.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .chat_messages import split_system, text_of

PATH = "/messages"
VERSION = "2023-06-01"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop", "model_context_window_exceeded": "length"}
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; the gateway's translation always sets one


def headers(key: str | None) -> dict[str, str]:
    return {"anthropic-version": VERSION, **({"x-api-key": key} if key else {})}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"type": "text", "text": content}] if isinstance(content, str) and content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, _, data = url[5:].partition(";base64,")
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _arguments(text: Any) -> Any:
    try:
        value = json.loads(text) if isinstance(text, str) and text.strip() else {}
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"value": value}


def _messages(chat_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages turns (system turns already taken out): tool answers become tool_result blocks of a user turn;
    same-role turns merge."""
    turns: list[dict[str, Any]] = []
    for msg in chat_messages:
        role, content = msg.get("role"), msg.get("content")
        if role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": str(msg.get("tool_call_id", "")),
                                     "content": text_of(content)}]
        elif role == "assistant":
            text = text_of(content)
            blocks = [{"type": "text", "text": text}] if text else []
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""),
                               "input": _arguments(fn.get("arguments"))})
        else:
            role, blocks = "user", _user_blocks(content)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _in_tool_loop(turns: list[dict[str, Any]]) -> bool:
    """The last assistant turn called a tool: Anthropic wants its thinking block back, which chat completions lost."""
    last = next((t for t in reversed(turns) if t["role"] == "assistant"), None)
    return last is not None and any(b["type"] == "tool_use" for b in last["content"])


def request_from_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages request for a chat-completions body (budget parameters already translated by the gateway)."""
    system, rest = split_system(body.get("messages") or [])
    turns = _messages(rest)
    out: dict[str, Any] = {"messages": turns,
                           "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = system
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = [{"name": fn.get("name", ""), "input_schema": fn.get("parameters") or {"type": "object"},
                         **({"description": fn["description"]} if fn.get("description") else {})}
                        for fn in (t.get("function") or {} for t in body["tools"])]
    choice = body.get("tool_choice")
    if choice is not None or body.get("parallel_tool_calls") is False:
        if isinstance(choice, dict):
            tool_choice: dict[str, Any] = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
        else:
            tool_choice = {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}
        if body.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = tool_choice
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        enabled = thinking.get("type") == "enabled"
        out["thinking"] = {"type": "disabled"} if enabled and _in_tool_loop(turns) else thinking
    config: dict[str, Any] = {}
    if body.get("reasoning_effort") in EFFORTS:
        config["effort"] = EFFORTS[body["reasoning_effort"]]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        config["format"] = {"type": "json_schema", "schema": (fmt.get("json_schema") or {}).get("schema") or {}}
    if config:
        out["output_config"] = config
    return out


def chat_usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}

    def count(key: str) -> int:
        value = u.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + cached + count("cache_creation_input_tokens")
    completion = count("output_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def valid(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("content"), list)


def completion(data: dict[str, Any]) -> dict[str, Any]:
    """A Message as a chat.completion: thinking as ``reasoning_content``, text, tool_use blocks as ``tool_calls``."""
    thinking, text, calls = [], [], []
    for block in data.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""), "arguments": json.dumps(block.get("input", {}))}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return {"id": data.get("id", ""), "object": "chat.completion", "created": int(time.time()), "model": data.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": FINISH.get(data.get("stop_reason") or "", "stop")}],
            "usage": chat_usage(data.get("usage"))}


class MessageChunks:
    """Messages stream events -> chat.completion.chunk dicts; tool_use blocks get consecutive tool-call indices."""

    final: dict[str, Any] | None = None  # Messages has no whole answer in its stream

    def __init__(self) -> None:
        self.base: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()), "model": ""}
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index -> tool-call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.base.update(id=message.get("id", ""), model=message.get("model", ""))
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools[event.get("index", 0)] = len(self.tools)
                return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id", ""), "type": "function",
                                                     "function": {"name": block.get("name", ""), "arguments": ""}}]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(event.get("index", 0), 0)
                return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            finish = FINISH.get((event.get("delta") or {}).get("stop_reason") or "", "stop")
            return [self._chunk({}, finish), {**self.base, "choices": [], "usage": chat_usage(self.usage)}]
        return []
