"""An Anthropic Messages request as a chat-completions body (the backend's protocol).

Content blocks map one to one where chat completions has the same idea: text -> text,
image -> image_url, an assistant's tool_use -> tool_calls, a user's tool_result -> a
``tool`` message (placed before the rest of that user turn, as chat completions wants
tool answers right after the call). Thinking blocks sent back by the client are dropped:
an OpenAI-protocol backend cannot take them. ``thinking.budget_tokens`` becomes a cap on
the routed thinking budget (it can only lower it); ``type: disabled`` turns thinking off.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError

# Fields the gateway cannot honour: refused with a clear 400 rather than silently dropped. Other fields it
# does not read (service_tier, cache_control, speed, inference_geo, diagnostics, workspace_id, ...) are
# accepted and have no effect: they concern Anthropic's own service, not an OpenAI-protocol backend.
UNSUPPORTED_FIELDS = frozenset({"container", "mcp_servers"})
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _text_of(blocks: Any, where: str) -> str:
    """The text of a string or a list of text blocks (system prompts, tool results)."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise InputError(f"{where} must be a string or a list of content blocks")
    parts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
            raise InputError(f"{where}[{i}] must be a text block")
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise InputError(f"{where}[{i}].text must be a string")
            parts.append(block["text"])
    return "\n".join(parts)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InputError(f"{where}.source must be a base64 or url image source")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise InputError(f"{where} needs a string id and name")
    args = block.get("input", {})
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": json.dumps(args)}}


def _tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise InputError(f"{where}.tool_use_id must be a string")
    content = block.get("content", "")
    text = _text_of(content, f"{where}.content")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise InputError("messages: must be a non-empty list of {role, content} objects")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise InputError(f"{where}.role: must be 'user' or 'assistant'")
        role, content = msg["role"], msg.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InputError(f"{where}.content: must be a string or a list of content blocks")
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            bwhere = f"{where}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image" and role == "user":
                parts.append(_image_part(block, bwhere))
            elif kind == "tool_use" and role == "assistant":
                calls.append(_tool_call(block, bwhere))
            elif kind == "tool_result" and role == "user":
                out.append(_tool_message(block, bwhere))
            elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                continue
            else:
                raise InputError(f"{bwhere}: unsupported content block type {kind!r} in a {role} message")
        if role == "assistant":
            text = "".join(p["text"] for p in parts)
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            if text or calls:
                out.append(message)
        elif parts:
            only_text = all(p["type"] == "text" for p in parts)
            out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts})
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InputError("tools: must be a list")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InputError(f"tools.{i}: server tool {kind!r} is not supported by this gateway; use custom tools")
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise InputError(f"tools.{i}: needs a string name and an input_schema object")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(raw: Any, body: dict[str, Any]) -> None:
    if not isinstance(raw, dict) or raw.get("type") not in ("auto", "any", "tool", "none"):
        raise InputError("tool_choice: must be {type: auto | any | tool | none}")
    kind = raw["type"]
    if kind == "tool":
        if not isinstance(raw.get("name"), str):
            raise InputError("tool_choice.name: required for type 'tool'")
        body["tool_choice"] = {"type": "function", "function": {"name": raw["name"]}}
    else:
        body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if raw.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def thinking_cap(raw: Any, max_tokens: int) -> int | None:
    """The client's cap on thinking tokens: None (no cap), 0 (off), or budget_tokens."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "disabled":
        return 0
    if kind in ("adaptive", "between_tools"):
        return None
    if kind != "enabled":
        raise InputError("thinking.type: must be 'enabled', 'disabled' or 'adaptive'")
    budget = raw.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        raise InputError("thinking.budget_tokens: must be an integer >= 1024")
    if budget >= max_tokens:
        raise InputError("thinking.budget_tokens: must be less than max_tokens")
    return budget


def to_chat_body(obj: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(chat-completions body, thinking cap) for a Messages request; InputError names the bad field."""
    for key in UNSUPPORTED_FIELDS:
        if obj.get(key) not in (None, [], {}):
            raise InputError(f"{key}: not supported by this gateway")
    if not isinstance(obj.get("model"), str) or not obj["model"]:
        raise InputError("model: Field required (a configured model, 'auto' or an alias)")
    max_tokens = obj.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InputError("max_tokens: Field required (an integer >= 1)")
    messages = _messages(obj.get("messages"))
    system = obj.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            messages.insert(0, {"role": "system", "content": text})
    body: dict[str, Any] = {"model": obj["model"], "messages": messages, "max_tokens": max_tokens}
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise InputError("stream: must be a boolean")
    body["stream"] = stream
    stops = obj.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InputError("stop_sequences: must be a list of strings")
        if stops:
            body["stop"] = stops
    for key in ("temperature", "top_p", "top_k"):
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InputError(f"{key}: must be a number")
            body[key] = value
    metadata = obj.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InputError("metadata: must be an object")
        if isinstance(metadata.get("user_id"), str):
            body["user"] = metadata["user_id"]
    if obj.get("tools"):
        body["tools"] = _tools(obj["tools"])
    if obj.get("tool_choice") is not None:
        _tool_choice(obj["tool_choice"], body)
    _output_config(obj.get("output_config"), body)
    return body, thinking_cap(obj.get("thinking"), max_tokens)


def _output_config(raw: Any, body: dict[str, Any]) -> None:
    """``effort`` caps the routed effort (xhigh and max count as high); ``format`` becomes a json_schema response_format."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InputError("output_config: must be an object")
    effort = raw.get("effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise InputError(f"output_config.effort: must be one of {', '.join(EFFORTS)}")
        body["reasoning_effort"] = EFFORTS[effort]
    fmt = raw.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise InputError("output_config.format: must be {type: json_schema, schema: {...}}")
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
