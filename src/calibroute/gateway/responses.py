"""``POST /v1/responses``: the OpenAI Responses API over the chat-completions pipeline.

Requests are translated in ``responses_request``; here, the answers: a chat.completion
becomes a Response whose ``output`` holds reasoning, message and function_call items; the
relay's SSE becomes the Responses event stream (response.created, response.in_progress,
then per item response.output_item.added, its part / text / arguments deltas and dones,
response.output_item.done, and response.completed, or response.incomplete when the
output budget ran out). Every answered response with ``store`` not false is kept, so a
later request can continue it with ``previous_response_id``. Errors stay OpenAI-format.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ..config import Portfolio
from .dialects import answer_of, sse_events
from .errors import error_response
from .requests import ChatRequest, parse_chat
from .responses_request import ConversationStore, to_chat_body
from .streaming import FinalChunk

if TYPE_CHECKING:
    from .chat import Outcome

ECHOED = ("instructions", "metadata", "temperature", "top_p", "tool_choice", "tools", "previous_response_id",
          "max_output_tokens", "reasoning", "text", "truncation", "user", "safety_identifier", "prompt_cache_key",
          "parallel_tool_calls", "store")
DEFAULTS: dict[str, Any] = {"metadata": {}, "tool_choice": "auto", "tools": [], "parallel_tool_calls": True, "store": True,
                            "text": {"format": {"type": "text"}}, "truncation": "disabled"}


def usage_of(out: Outcome) -> dict[str, Any]:
    tally = out.tally
    p, c, r = (tally.prompt_tokens, tally.completion_tokens, tally.reasoning_tokens) if tally else (0, 0, 0)
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": tally.cached_tokens if tally else 0},
            "output_tokens": c, "output_tokens_details": {"reasoning_tokens": r}, "total_tokens": p + c}


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}] if text else []}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" or text else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": parts}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments, "status": status}


class ResponsesDialect:
    native_api = "responses"

    def __init__(self, store: ConversationStore | None = None) -> None:
        self.store = store or ConversationStore()

    def parse(self, obj: dict[str, Any], portfolio: Portfolio) -> ChatRequest:
        chat = parse_chat(to_chat_body(obj, self.store), portfolio)
        return replace(chat, include_usage=True, source=obj)

    def response(self, chat: ChatRequest, out: Outcome, output: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
        """The Response object; ``finish`` None: still in progress."""
        src = chat.source or {}
        status = "in_progress" if finish is None else "incomplete" if finish == "length" else "completed"
        data: dict[str, Any] = {"id": "resp_" + out.request_id, "object": "response", "created_at": int(time.time()),
                                "status": status, "model": out.model or "", "output": output, "error": None,
                                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                                "usage": usage_of(out) if finish is not None else None}
        for key in ECHOED:
            data[key] = src.get(key, DEFAULTS.get(key))
        if finish is not None and src.get("store") is not False:
            self.remember(chat, data)
        return data

    def remember(self, chat: ChatRequest, data: dict[str, Any]) -> None:
        """Keep the conversation (without this turn's instructions) plus the answer, for previous_response_id."""
        messages = list(chat.body["messages"])
        if (chat.source or {}).get("instructions") is not None:
            messages = messages[1:]
        output = [item for item in data.get("output") or () if isinstance(item, dict)]
        text = "".join(p.get("text", "") for item in output if item.get("type") == "message" for p in item.get("content") or ())
        calls = [{"id": item.get("call_id"), "type": "function", "function": {"name": item.get("name"),
                                                                           "arguments": item.get("arguments")}}
                 for item in output if item.get("type") == "function_call"]
        answer: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            answer["tool_calls"] = calls
        self.store.put(data["id"], [*messages, answer])

    def complete(self, chat: ChatRequest, data: dict[str, Any], out: Outcome) -> dict[str, Any]:
        thinking, text, calls, finish = answer_of(data)
        output: list[dict[str, Any]] = []
        if thinking:
            output.append(reasoning_item(f"rs_{out.request_id}_0", thinking, "completed"))
        if text:
            output.append(message_item(f"msg_{out.request_id}_{len(output)}", text, "completed"))
        for call in calls:
            fn = call.get("function") or {}
            output.append(call_item(f"fc_{out.request_id}_{len(output)}", call.get("id") or f"call_{len(output)}",
                                    fn.get("name", ""), fn.get("arguments") or "", "completed"))
        return self.response(chat, out, output, finish)

    def stream(self, chat: ChatRequest, chunks: AsyncIterator[bytes], out: Outcome) -> AsyncIterator[bytes]:
        return ResponsesStream(self, chat, out).run(chunks)

    def error_response(self, exc: BaseException, headers: dict[str, str] | None = None) -> Response:
        return error_response(exc, headers)

    def error_event(self, exc: BaseException, last: dict[str, Any] | None) -> bytes:
        seq = (last or {}).get("sequence_number")
        payload = {"type": "error", "code": "server_error", "message": str(exc) or type(exc).__name__, "param": None,
                   "sequence_number": seq + 1 if isinstance(seq, int) else 0}
        return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"

    def native_answer(self, chat: ChatRequest, data: dict[str, Any]) -> None:
        """A native Response is kept like a translated one, so ``previous_response_id`` works with its id."""
        if (chat.source or {}).get("store") is not False and isinstance(data.get("id"), str):
            self.remember(chat, data)


class ResponsesStream:
    """Chat-completion chunks -> Responses events; one output item open at a time."""

    def __init__(self, dialect: ResponsesDialect, chat: ChatRequest, out: Outcome) -> None:
        self.dialect, self.chat, self.out = dialect, chat, out
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.open: str | None = None  # "reasoning", "message" or "call:<upstream index>"
        self.text = ""  # the open item's text or arguments so far
        self.finish: str | None = None
        self.failed_already = False

    def event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"

    @property
    def where(self) -> dict[str, Any]:
        return {"item_id": self.output[-1]["id"], "output_index": len(self.output) - 1}

    def _open(self, key: str, item: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.open, self.text = key, ""
        self.output.append(item)
        events.append(self.event("response.output_item.added", output_index=len(self.output) - 1, item=item))
        if item["type"] == "message":
            events.append(self.event("response.content_part.added", **self.where, content_index=0,
                                     part={"type": "output_text", "text": "", "annotations": []}))
        elif item["type"] == "reasoning":
            events.append(self.event("response.content_part.added", **self.where, content_index=0,
                                     part={"type": "reasoning_text", "text": ""}))
        return events

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        item, where, text = self.output[-1], self.where, self.text
        events: list[bytes] = []
        if item["type"] == "message":
            item.update(message_item(item["id"], text, "completed"))
            events.append(self.event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]))
            events.append(self.event("response.content_part.done", **where, content_index=0, part=item["content"][0]))
        elif item["type"] == "reasoning":
            item.update(reasoning_item(item["id"], text, "completed"))
            events.append(self.event("response.reasoning_text.done", **where, content_index=0, text=text))
            events.append(self.event("response.content_part.done", **where, content_index=0,
                                     part={"type": "reasoning_text", "text": text}))
        else:
            item.update(arguments=text, status="completed")
            events.append(self.event("response.function_call_arguments.done", **where, arguments=text))
        events.append(self.event("response.output_item.done", output_index=where["output_index"], item=item))
        self.open = None
        return events

    def translate(self, data: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        rid = self.out.request_id
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thinking, str) and thinking:
                if self.open != "reasoning":
                    events += self._open("reasoning", reasoning_item(f"rs_{rid}_{len(self.output)}", "", "in_progress"))
                self.text += thinking
                events.append(self.event("response.reasoning_text.delta", **self.where, content_index=0, delta=thinking))
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open != "message":
                    events += self._open("message", message_item(f"msg_{rid}_{len(self.output)}", "", "in_progress"))
                self.text += text
                events.append(self.event("response.output_text.delta", **self.where, content_index=0, delta=text, logprobs=[]))
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                key = f"call:{call.get('index', 0)}"
                if self.open != key:
                    n = len(self.output)
                    events += self._open(key, call_item(f"fc_{rid}_{n}", call.get("id") or f"call_{n}", fn.get("name", ""),
                                                        "", "in_progress"))
                if fn.get("arguments"):
                    self.text += fn["arguments"]
                    events.append(self.event("response.function_call_arguments.delta", **self.where, delta=fn["arguments"]))
            self.finish = choice.get("finish_reason") or self.finish
        return events

    def end(self) -> list[bytes]:
        events = self._close()
        final = self.dialect.response(self.chat, self.out, self.output, self.finish or "stop")
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return [*events, self.event(kind, response=final)]

    def failed(self, data: dict[str, Any]) -> list[bytes]:
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        message, code = str(err.get("message", "error")), err.get("code")
        final = self.dialect.response(self.chat, self.out, self.output, None)
        final.update(status="failed", error={"code": str(code or "server_error"), "message": message})
        self.failed_already = True
        return [self.event("error", code=code, message=message, param=None), self.event("response.failed", response=final)]

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            start = self.dialect.response(self.chat, self.out, [], None)
            yield self.event("response.created", response=start) + self.event("response.in_progress", response=start)
            async for chunk in chunks:
                events: list[bytes] = []
                for data in sse_events(chunk):
                    if data is None:
                        continue  # the Responses stream ends with response.completed, no [DONE]
                    if "error" in data and not data.get("choices"):
                        events += self.failed(data)
                    else:
                        events += self.translate(data)
                if isinstance(chunk, FinalChunk):
                    if not self.failed_already:
                        events += self.end()
                    yield FinalChunk(b"".join(events))
                elif events:
                    yield b"".join(events)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


RESPONSES = ResponsesDialect()
