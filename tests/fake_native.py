"""Fake backends that speak the Anthropic Messages API and the OpenAI Responses API (whole and streamed), for the
native pass-through tests. Each answers in the API's documented shapes and event order, calls a tool when offered
tools (until a tool result comes back), thinks when asked to, reports prompt-cache reads, and records every request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SIGNATURE = "EqQBCkYIBxgCKkD-anthropic-signature"


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, **data}).encode() + b"\n\n"


@dataclass
class FakeNative:
    """Behaviour shared by both fakes; tests set the fields between requests."""

    path = ""  # the API's endpoint (a class attribute, not a field)

    reply: str = "Hello from the native backend."
    thinking: str = ""  # Anthropic: a thinking block when the request enables thinking; Responses: a reasoning item
    tool_call: tuple[str, dict[str, Any]] | None = None  # (name, input): called when tools are offered, until a result
    cached_tokens: int = 0
    fail_status: int | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, body: dict[str, Any], tool_result: str | None) -> tuple[str, tuple[str, dict[str, Any]] | None]:
        if tool_result is not None:
            return f"The tool said: {tool_result}", None
        return self.reply, self.tool_call if body.get("tools") else None

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = await request.json()
            self.requests.append({"headers": dict(request.headers), **body})
            if self.fail_status:
                return JSONResponse({"type": "error", "error": {"type": "api_error", "message": "fake native failure"}},
                                    status_code=self.fail_status)
            return self.respond(body)

        return Starlette(routes=[Route(self.path, endpoint, methods=["POST"])])

    def respond(self, body: dict[str, Any]) -> Response:
        raise NotImplementedError


class FakeAnthropic(FakeNative):
    path = "/v1/messages"

    def respond(self, body: dict[str, Any]) -> Response:
        last = body["messages"][-1]["content"]
        result = next((b["content"] for b in last if b.get("type") == "tool_result"), None) if isinstance(last, list) else None
        text, call = self.answer(body, result)
        think = self.thinking if (body.get("thinking") or {}).get("type") == "enabled" else ""
        prompt = len(json.dumps(body["messages"]).split())
        usage = {"input_tokens": prompt - self.cached_tokens, "output_tokens": len(_words(text)) + len(think.split()),
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": self.cached_tokens}
        content: list[dict[str, Any]] = []
        if think:
            content.append({"type": "thinking", "thinking": think, "signature": SIGNATURE})
        content.append({"type": "text", "text": text})
        if call:
            content.append({"type": "tool_use", "id": "toolu_fake1", "name": call[0], "input": call[1]})
        message = {"id": "msg_fake1", "type": "message", "role": "assistant", "model": body["model"], "content": content,
                   "stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return JSONResponse(message)
        return StreamingResponse(self.events(message), media_type="text/event-stream")

    def events(self, message: dict[str, Any]) -> Iterator[bytes]:
        start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
        yield _sse("message_start", {"message": start}) + _sse("ping", {})
        for i, block in enumerate(message["content"]):
            if block["type"] == "thinking":
                yield _sse("content_block_start", {"index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                yield _sse("content_block_delta", {"index": i, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
                yield _sse("content_block_delta", {"index": i, "delta": {"type": "signature_delta", "signature": SIGNATURE}})
            elif block["type"] == "text":
                yield _sse("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                for word in _words(block["text"]):
                    yield _sse("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": word}})
            else:
                yield _sse("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
                args = json.dumps(block["input"])
                for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                    yield _sse("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": piece}})
            yield _sse("content_block_stop", {"index": i})
        yield _sse("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": message["usage"]["output_tokens"]}})
        yield _sse("message_stop", {})


class FakeResponses(FakeNative):
    path = "/v1/responses"

    def respond(self, body: dict[str, Any]) -> Response:
        items = body["input"] if isinstance(body["input"], list) else [{"role": "user", "content": body["input"]}]
        last = items[-1]
        text, call = self.answer(body, last.get("output") if last.get("type") == "function_call_output" else None)
        prompt = len(json.dumps(body["input"]).split())
        output: list[dict[str, Any]] = []
        if self.thinking and (body.get("reasoning") or {}).get("effort"):
            output.append({"type": "reasoning", "id": "rs_fake1", "summary": [],
                           "content": [{"type": "reasoning_text", "text": self.thinking}]})
        output.append({"type": "message", "id": "msg_fake1", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]})
        if call:
            output.append({"type": "function_call", "id": "fc_fake1", "call_id": "call_fake1", "name": call[0],
                           "arguments": json.dumps(call[1]), "status": "completed"})
        out_tokens = len(_words(text)) + len(self.thinking.split())
        response = {"id": f"resp_fake{len(self.requests)}", "object": "response", "created_at": 0, "status": "completed",
                    "model": body["model"], "output": output, "error": None, "incomplete_details": None,
                    "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": self.cached_tokens},
                              "output_tokens": out_tokens, "output_tokens_details": {"reasoning_tokens": len(self.thinking.split())},
                              "total_tokens": prompt + out_tokens}}
        if not body.get("stream"):
            return JSONResponse(response)
        return StreamingResponse(self.events(response), media_type="text/event-stream")

    def events(self, response: dict[str, Any]) -> Iterator[bytes]:
        seq = iter(range(1000))

        def ev(kind: str, **data: Any) -> bytes:
            return _sse(kind, {"sequence_number": next(seq), **data})

        start = {**response, "status": "in_progress", "output": [], "usage": None}
        yield ev("response.created", response=start) + ev("response.in_progress", response=start)
        for i, item in enumerate(response["output"]):
            yield ev("response.output_item.added", output_index=i, item={**item, "status": "in_progress"})
            where = {"item_id": item["id"], "output_index": i}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield ev("response.content_part.added", **where, content_index=0, part={"type": "output_text", "text": ""})
                for word in _words(text):
                    yield ev("response.output_text.delta", **where, content_index=0, delta=word)
                yield ev("response.output_text.done", **where, content_index=0, text=text)
                yield ev("response.content_part.done", **where, content_index=0, part=item["content"][0])
            elif item["type"] == "reasoning":
                text = item["content"][0]["text"]
                yield ev("response.reasoning_text.delta", **where, content_index=0, delta=text)
                yield ev("response.reasoning_text.done", **where, content_index=0, text=text)
            else:
                yield ev("response.function_call_arguments.delta", **where, delta=item["arguments"])
                yield ev("response.function_call_arguments.done", **where, arguments=item["arguments"])
            yield ev("response.output_item.done", output_index=i, item=item)
        yield ev("response.completed", response=response)
