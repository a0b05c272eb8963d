"""Small OpenAI-protocol servers for gateway tests, and the harness that wires them up.

``FakeModel`` speaks /v1/chat/completions (whole and streamed) and can be told to be slow,
fail with a status, drop the connection or send an error event mid-stream, and to think
in <think> blocks that honour an assistant prefill (as vLLM's continue_final_message does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from servers import free_port, serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

THINK_TOKEN = "hm "  # one estimated token per thinking delta
ANSWER = "The answer is 42."


@dataclass
class FakeModel:
    """Behaviour of one fake server; tests change fields between requests."""

    name: str = "fake"
    reply: str = "Hello from the fake backend."
    think_words: int = 0  # > 0: answer after a <think> block of this many deltas
    extra_think_words: int = 5  # after a "Wait" prefill, think this much more
    fail_times: int = 0  # the next N requests fail with fail_status
    fail_status: int = 500
    delay_s: float = 0.0  # before the response starts
    chunk_delay_s: float = 0.0
    drop_after: int | None = None  # stream: drop the connection after N chunks
    error_event_after: int | None = None  # stream: send an error event after N chunks
    send_usage: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)

    # -- what the "model" says ----------------------------------------------------------
    def deltas(self, messages: list[dict[str, Any]]) -> list[str]:
        last = messages[-1] if messages else {}
        prefill = last.get("content") if last.get("role") == "assistant" else None
        if self.think_words <= 0:
            return _words(self.reply)
        if prefill is None:
            think = ["<th", "ink>"] + [THINK_TOKEN] * self.think_words + ["</thi", "nk>"]
            return think + ["\n\n"] + _words(ANSWER)
        if "</think>" in prefill:
            return _words(" " + ANSWER)
        return [" "] + [THINK_TOKEN] * self.extra_think_words + ["</think>", "\n\n"] + _words(ANSWER)

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            failing = self.fail_times > 0  # decided on arrival: a slow request must not eat a later test's failure
            if failing:
                self.fail_times -= 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if failing:
                return JSONResponse({"error": {"message": f"fake failure {self.fail_status}", "type": "server_error"}},
                                    status_code=self.fail_status)
            messages = body.get("messages") or []
            deltas = self.deltas(messages)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(deltas), "total_tokens": prompt_tokens + len(deltas)}
            created = int(time.time())
            if not body.get("stream"):
                msg = {"role": "assistant", "content": "".join(deltas)}
                return JSONResponse({"id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                                     "model": body.get("model"), "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                                     "usage": usage})
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._sse(body, deltas, usage, created, include_usage), media_type="text/event-stream")

        async def models(request: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])

    async def _sse(self, body: dict[str, Any], deltas: list[str], usage: dict[str, int], created: int, include_usage: bool):  # type: ignore[no-untyped-def]
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body.get("model")}

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i, text in enumerate(deltas):
            if self.drop_after is not None and i >= self.drop_after:
                raise ConnectionAbortedError("fake backend drops the connection")
            if self.error_event_after is not None and i >= self.error_event_after:
                yield b'data: {"error": {"message": "fake upstream failure mid-stream", "type": "server_error", "code": 500}}\n\n'
                return
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if include_usage and self.send_usage:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"


def with_backend(spec: Any, call: Any) -> Any:
    """Run ``await call(backend)`` on a fresh OpenAICompatBackend for ``spec``; the backend is always closed."""
    from calibroute.backends.openai_compat import OpenAICompatBackend

    async def go() -> Any:
        b = OpenAICompatBackend(spec)
        try:
            return await call(b)
        finally:
            await b.aclose()

    return asyncio.run(go())


async def stream_text(b: Any, body: dict[str, Any] | None = None) -> str:
    """The content of a streamed answer to ``body`` (default: one user message), joined."""
    s = await b.open_stream(dict(body or {"messages": [{"role": "user", "content": "hi"}]}))
    try:
        return "".join([(ev.data["choices"][0]["delta"].get("content") or "") async for ev in s if ev.data["choices"]])
    finally:
        await s.aclose()


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


class MemoryLedger:
    """An in-memory LedgerSink for tests."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.closed = False

    def record(self, row: Any) -> None:
        self.rows.append(row)

    def close(self) -> None:
        self.closed = True


def portfolio_yaml(urls: dict[str, tuple[str, str]], routes: dict[str, str] | None = None, read_timeout_s: float = 5.0) -> str:
    """A portfolio whose models are the fake servers: name -> (base_url, reasoning control)."""
    models = "\n".join(
        f"  - {{name: {name}, backend: {{base_url: '{url}/v1', served_model: served-{name}, connect_timeout_s: 2, "
        f"read_timeout_s: {read_timeout_s}, total_timeout_s: 10}}, input_usd_per_mtok: {i + 1}, output_usd_per_mtok: {2 * (i + 1)}, reasoning: {ctl}}}"
        for i, (name, (url, ctl)) in enumerate(urls.items())
    )
    return "models:\n" + models + "\n" + (routes_yaml(routes or {}))


def routes_yaml(routes: dict[str, str]) -> str:
    return "routes:\n" + "".join(f"  {cls}: {spec}\n" for cls, spec in routes.items()) + (
        "aliases: {auto: auto, calibroute-reasoning: REASONING, calibroute-simple: SIMPLE}\n"
        "routing: {min_confidence: 0.55, escalation: {threshold: 0.1}}\n"
    )


def dead_url() -> str:
    """A loopback address where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def serve_models(*fakes: FakeModel) -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        yield {f.name: stack.enter_context(serve_in_thread(f.app())) for f in fakes}


# -- the gateway under test, wired to fake servers -------------------------------------------
STANDARD_ROUTES = {
    "SIMPLE": "{models: [small, mid], budget: {max_output_tokens: 256, thinking: false}}",
    "REASONING": ("{models: [thinker, effort], budget: {max_output_tokens: 4096, thinking: true, thinking_budget_tokens: 20,"
                  " effort: high}, escalate_to: claude, escalated_budget: {max_output_tokens: 8192, thinking: true,"
                  " thinking_budget_tokens: 4096, effort: high}}"),
    "OPEN_ENDED": "{models: [mid, small], budget: {max_output_tokens: 1024, thinking: false}}",
    "GENERAL": "{models: [mid, effort], budget: {max_output_tokens: 2048, thinking: true, thinking_budget_tokens: 1024, effort: medium}}",
}
CONTROLS = {"small": "none", "mid": "enable_thinking", "thinker": "think_tags", "effort": "reasoning_effort", "claude": "budget_tokens"}


def standard_fakes() -> dict[str, FakeModel]:
    return {name: FakeModel(name=name, reply=f"Hello from {name}.") for name in CONTROLS}


def reset(fakes: dict[str, FakeModel]) -> None:
    for name, fake in fakes.items():
        fresh = FakeModel(name=name, reply=f"Hello from {name}.")
        fake.__dict__.update(fresh.__dict__)


@dataclass
class Stack:
    url: str
    fakes: dict[str, FakeModel]
    ledger: Any
    app: Any

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextmanager
def gateway_stack(fakes: dict[str, FakeModel], urls: dict[str, str], *, ledger: Any = None,
                  urls_override: dict[str, str] | None = None, read_timeout_s: float = 5.0,
                  **settings: Any) -> Iterator[Stack]:
    """The gateway as a real uvicorn server, routing with the deterministic stub estimators."""
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import parse_portfolio
    from calibroute.gateway import GatewaySettings, create_app
    from calibroute.router import Router

    merged = {**urls, **(urls_override or {})}
    portfolio = parse_portfolio(portfolio_yaml({n: (merged[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES, read_timeout_s))
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    ledger = ledger if ledger is not None else MemoryLedger()
    opts = {"retries": 1, "backoff_s": 0.01, "backoff_max_s": 0.02, "ledger_batch_s": 0.0, **settings}
    app = create_app(GatewaySettings(**opts), router=router, ledger=ledger)
    with serve_in_thread(app) as url:
        yield Stack(url, fakes, ledger, app)
