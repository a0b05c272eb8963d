"""Client request bodies -> validated ``ChatRequest``s; every problem is an InputError (4xx).

Only what the gateway itself reads is checked here (model, messages, stream, the budget
caps); other fields pass through to the backend, which answers for them. Two things that
parse but would break later are settled here too: JSON nested deeper than
``MAX_JSON_DEPTH`` (re-encoding it for the backend would exhaust the stack) is refused, and
lone UTF-16 surrogates (``"\\ud800"``, valid JSON but not text) become U+FFFD, as a UTF-8
decoder would do.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from ..config import EFFORT_ORDER, TASK_CLASSES, Portfolio
from ..errors import InputError, UnknownModelError
from ..types import Hints, TaskClass
from .errors import BodyTimeout, ClientDisconnected, PayloadTooLarge

MAX_JSON_DEPTH = 100  # far beyond any real request (tool schemas included), far below the recursion limit
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ChatRequest:
    body: dict[str, Any]
    requested: str  # the model field as sent
    route: str  # metrics label: "auto", an alias, or "direct" (a configured model)
    stream: bool
    include_usage: bool
    hints: Hints
    source: dict[str, Any] | None = None  # the client's body in its own API, when a dialect translated it


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all, and a
    client that takes longer than ``timeout_s`` to send it (408: a slow client holds a
    connection and a task for as long as it likes otherwise)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"request body not received within {timeout_s:g}s") from None
    except ClientDisconnect:
        raise ClientDisconnected("client disconnected while sending the request body") from None
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InputError("request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text)
    except UnicodeDecodeError:
        raise InputError("request body is not UTF-8") from None
    except ValueError as exc:
        raise InputError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError("request body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise InputError("request body must be a JSON object")
    # Both checks below walk the object only when the text says they might find something.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and nested_deeper_than(obj, MAX_JSON_DEPTH):
        raise InputError(f"request body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    if _SURROGATE_ESCAPE.search(text):
        obj = without_lone_surrogates(obj)
    return obj


def nested_deeper_than(obj: Any, limit: int) -> bool:
    """Iterative, so that checking a deep object cannot itself exhaust the stack."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def without_lone_surrogates(node: Any) -> Any:
    """A copy with every unpaired surrogate (json.loads keeps them; nothing can encode them) as U+FFFD."""
    if isinstance(node, str):
        return _LONE_SURROGATE.sub("\ufffd", node)
    if isinstance(node, list):
        return [without_lone_surrogates(item) for item in node]
    if isinstance(node, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in node.items()}
    return node


def _positive_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{key} must be a positive integer")
    return value


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise InputError("missing required field 'messages'")
    if not isinstance(messages, list) or not messages:
        raise InputError("messages must be a non-empty list of {role, content} objects")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise InputError(f"messages[{i}] must be an object with a string 'role'")
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InputError(f"messages[{i}].content must be a string or a list of content parts")


def resolve_model(requested: str, portfolio: Portfolio) -> tuple[str, str | None, TaskClass | None]:
    """(route label, passthrough model, task class) for the model field."""
    if requested in portfolio.aliases:
        target = portfolio.aliases[requested]
        return requested, None, None if target == "auto" else TaskClass(target)
    if requested == "auto":
        return "auto", None, None
    if any(m.name == requested for m in portfolio.models):
        return "direct", requested, None
    raise UnknownModelError(requested, [m.name for m in portfolio.models] + ["auto", *portfolio.aliases])


def parse_chat(obj: dict[str, Any], portfolio: Portfolio) -> ChatRequest:
    model = obj.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise InputError("model must be a non-empty string (a configured model, 'auto' or an alias)")
    _check_messages(obj.get("messages"))
    stream = obj.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InputError("stream must be a boolean")
    options = obj.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InputError("stream_options must be an object")
    include_usage = bool(options and options.get("include_usage") is True)
    caps = [c for c in (_positive_int(obj, "max_tokens"), _positive_int(obj, "max_completion_tokens")) if c is not None]
    effort = obj.get("reasoning_effort")
    if effort is not None and effort not in EFFORT_ORDER:
        raise InputError(f"reasoning_effort must be one of {', '.join(EFFORT_ORDER)}")
    n = obj.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise InputError("n must be a positive integer")
    route, passthrough, task_class = resolve_model(model, portfolio)
    assert task_class is None or task_class.value in TASK_CLASSES
    hints = Hints(model=passthrough, task_class=task_class, max_output_tokens=min(caps) if caps else None, effort=effort)
    return ChatRequest(obj, model, route, stream, include_usage, hints)
