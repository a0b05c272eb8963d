"""An OpenAI Responses request as a chat-completions body, and the conversations the gateway keeps.

``input`` (a string or items) becomes messages: message items by role (``developer`` as
``system``), ``function_call`` items as an assistant's ``tool_calls``, ``function_call_output``
items as ``tool`` messages; reasoning items are dropped. ``instructions`` is a leading system
message (not carried over from a previous response, as the API says). ``previous_response_id``
works for responses this gateway process stored (``ConversationStore``, in memory, bounded);
any other id is a 400 that says so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..errors import InputError

EFFORTS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high", "max": "high"}
# Fields the gateway cannot honour: refused (400), never ignored silently. Other fields it does not read
# (include, truncation, service_tier, prompt_cache_retention, ...) are accepted and have no effect.
UNSUPPORTED_FIELDS = ("conversation", "prompt", "context_management")


class ConversationStore:
    """The messages of the last ``capacity`` stored responses (their input plus their output), by id."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response_id: str, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[response_id] = messages
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            messages = self._items.get(response_id)
            if messages is not None:
                self._items.move_to_end(response_id)
            return messages


def _content_text(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content: a string, or chat-completions parts for input_text / output_text / input_image."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InputError(f"{where}.content must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal") and isinstance(part.get("text", part.get("refusal")), str):
            parts.append({"type": "text", "text": part.get("text", part.get("refusal"))})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise InputError(f"{where}.content[{i}]: unsupported content part type {kind!r}")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(p.get("text", "") for p in output if isinstance(p, dict))
    raise InputError("function_call_output.output must be a string or a list of content parts")


def input_messages(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise InputError("input must be a string or a list of input items")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{where} must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InputError(f"{where}.role must be user, assistant, system or developer")
            out.append({"role": "system" if role == "developer" else role, "content": _content_text(item.get("content"), where)})
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise InputError(f"{where}: function_call needs string call_id, name and arguments")
            call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and not isinstance(last.get("content"), list):
                last.setdefault("tool_calls", []).append(call)  # parallel calls: one assistant turn
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InputError(f"{where}: function_call_output needs a string call_id")
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item.get("output"))})
        elif kind == "reasoning":
            continue
        else:
            raise InputError(f"{where}: input item type {kind!r} is not supported by this gateway")
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InputError("tools must be a list")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InputError(f"tools[{i}]: built-in tool {kind!r} is not supported by this gateway; use function tools")
        if not isinstance(tool.get("name"), str):
            raise InputError(f"tools[{i}].name must be a string")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(raw: Any) -> Any:
    if raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise InputError("tool_choice must be auto, none, required or {type: function, name}")


def _text_format(raw: Any, body: dict[str, Any]) -> None:
    fmt = raw.get("format") if isinstance(raw, dict) else None
    if fmt is None or fmt.get("type") == "text":
        return
    if fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}}
    else:
        raise InputError("text.format.type must be text, json_object or json_schema")


def to_chat_body(obj: dict[str, Any], store: ConversationStore) -> dict[str, Any]:
    """The chat-completions body for a Responses request; InputError names the bad field."""
    for key in UNSUPPORTED_FIELDS:
        if obj.get(key) not in (None, [], {}):
            raise InputError(f"{key} is not supported by this gateway")
    if obj.get("background") is True:
        raise InputError("background responses are not supported by this gateway")
    if not isinstance(obj.get("model"), str) or not obj["model"]:
        raise InputError("model must be a non-empty string (a configured model, 'auto' or an alias)")
    if "input" not in obj:
        raise InputError("missing required field 'input'")
    messages = input_messages(obj["input"])
    previous = obj.get("previous_response_id")
    if previous is not None:
        earlier = store.get(previous) if isinstance(previous, str) else None
        if earlier is None:
            raise InputError(f"previous_response_id {previous!r} is not stored by this gateway (it keeps the last "
                             f"{store.capacity} responses of this process in memory, and none with store=false): "
                             "send the whole conversation in input instead")
        messages = [m for m in earlier if m["role"] != "system"] + messages
    instructions = obj.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InputError("instructions must be a string")
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        raise InputError("input must not be empty")
    body: dict[str, Any] = {"model": obj["model"], "messages": messages, "stream": obj.get("stream") or False}
    max_out = obj.get("max_output_tokens")
    if max_out is not None:
        body["max_tokens"] = max_out
    reasoning = obj.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InputError("reasoning must be an object")
        effort = reasoning.get("effort")
        if effort is not None and effort not in EFFORTS:
            raise InputError(f"reasoning.effort must be one of {', '.join(EFFORTS)}")
        if effort is not None:
            body["reasoning_effort"] = EFFORTS[effort]
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if obj.get(key) is not None:
            body[key] = obj[key]
    user = obj.get("safety_identifier") or obj.get("user")
    if isinstance(user, str):
        body["user"] = user
    if obj.get("tools"):
        body["tools"] = _tools(obj["tools"])
    if obj.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(obj["tool_choice"])
    _text_format(obj.get("text"), body)
    return body

