"""Small OpenAI-protocol servers for gateway tests, and the harness that wires them up.

``FakeModel`` speaks /v1/chat/completions (whole and streamed), thinks in <think> blocks
that honour an assistant prefill (as vLLM's continue_final_message does), and injects
every fault a gateway must survive, streamed and not: an error status before the first
byte (with Retry-After, or echoing the request text in its message), a hang, a dropped
connection or an error event after the first byte, a 200 that is not SSE, a truncated or
slowly trickling JSON body, negative usage. Tests set the fields between requests; load
tests set ``fault_rate`` and get a random fault from ``fault_kinds`` on that share of requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
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
NOT_SSE = b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1>\nnginx</body></html>\n"
NEGATIVE_USAGE = {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000}
# What fault_rate draws from; each name is also the per-request effect of the field of that meaning.
FAULT_KINDS = ("status_500", "status_429", "hang", "drop", "error_event", "not_sse", "negative_usage",
               "slow_body", "truncate", "echo_error")


@dataclass
class Faults:
    """The faults one request gets, decided on its arrival."""

    fail_status: int | None = None
    retry_after: str | None = None
    echo_error: bool = False
    hang: bool = False
    drop_after: int | None = None
    error_event_after: int | None = None
    not_sse: bool = False
    usage: dict[str, int] | None = None
    slow_body_s: float = 0.0
    truncate: bool = False


@dataclass
class FakeModel:
    """Behaviour of one fake server; tests change fields between requests."""

    name: str = "fake"
    reply: str = "Hello from the fake backend."
    think_words: int = 0  # > 0: answer after a <think> block of this many deltas
    extra_think_words: int = 5  # after a "Wait" prefill, think this much more
    fail_times: int = 0  # the next N requests fail with fail_status
    fail_status: int = 500
    retry_after: str | None = None  # sent as Retry-After with those failures
    echo_errors: bool = False  # failure messages quote the request's last message, as some servers do
    delay_s: float = 0.0  # before the response starts
    chunk_delay_s: float = 0.0
    drop_after: int | None = None  # stream: drop the connection after N chunks
    error_event_after: int | None = None  # stream: send an error event after N chunks
    send_usage: bool = True
    usage_override: dict[str, int] | None = None  # replaces the usage counts (e.g. NEGATIVE_USAGE)
    not_sse: bool = False  # stream: a 200 with an HTML page instead of SSE
    hang: bool = False  # never answer; each caller that gives up counts in ``abandoned``
    slow_body_s: float = 0.0  # not streamed: the JSON body trickles out in pieces, this long apart
    truncate: bool = False  # not streamed: half the JSON body, then the connection drops
    fault_rate: float = 0.0  # this share of requests gets one random fault from fault_kinds
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    abandoned: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    tool_call: tuple[str, str] | None = None  # (name, JSON arguments): call it when offered tools, until a tool answers
    reasoning: str = ""  # sent as reasoning_content before the answer (as vLLM's reasoning parsers do)
    cached_tokens: int = 0  # reported as usage.prompt_tokens_details.cached_tokens

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def faults(self) -> Faults:
        """This request's faults: the fields set by a test, or one drawn at ``fault_rate``."""
        f = Faults(retry_after=self.retry_after, echo_error=self.echo_errors, hang=self.hang, drop_after=self.drop_after,
                   error_event_after=self.error_event_after, not_sse=self.not_sse, usage=self.usage_override,
                   slow_body_s=self.slow_body_s, truncate=self.truncate)
        if self.fail_times > 0:  # decided on arrival: a slow request must not eat a later test's failure
            self.fail_times -= 1
            f.fail_status = self.fail_status
        if self.fault_rate and self._rng.random() < self.fault_rate:
            kind = self._rng.choice(self.fault_kinds)
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
            effect: dict[str, Any] = {
                "status_500": {"fail_status": 500}, "status_429": {"fail_status": 429, "retry_after": "1"},
                "hang": {"hang": True}, "drop": {"drop_after": 1}, "error_event": {"error_event_after": 1},
                "not_sse": {"not_sse": True}, "negative_usage": {"usage": NEGATIVE_USAGE},
                "slow_body": {"slow_body_s": 0.05}, "truncate": {"truncate": True},
                "echo_error": {"fail_status": 500, "echo_error": True},
            }[kind]
            for key, value in effect.items():
                setattr(f, key, value)
        return f

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
            f = self.faults()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if f.hang:
                while not await request.is_disconnected():
                    await asyncio.sleep(0.02)
                self.abandoned += 1
                return Response(status_code=500)
            if f.fail_status is not None:
                return self._failure(f, body)
            messages = body.get("messages") or []
            deltas = self.deltas(messages)
            if messages and messages[-1].get("role") == "tool":
                deltas = _words(f"The tool said: {messages[-1].get('content')}")
            call = self.tool_call if body.get("tools") and not (messages and messages[-1].get("role") == "tool") else None
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(deltas), "total_tokens": prompt_tokens + len(deltas)}
            usage.update(f.usage or {})
            if self.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}  # type: ignore[assignment]
            created = int(time.time())
            if not body.get("stream"):
                msg: dict[str, Any] = {"role": "assistant", "content": "".join(deltas)}
                if self.reasoning:
                    msg["reasoning_content"] = self.reasoning
                if call is not None:
                    msg.update(content=None, tool_calls=[{"id": "call_fake1", "type": "function",
                                                          "function": {"name": call[0], "arguments": call[1]}}])
                reason = "tool_calls" if call is not None else "stop"
                data = json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                                   "model": body.get("model"), "choices": [{"index": 0, "message": msg, "finish_reason": reason}],
                                   "usage": usage}).encode()
                if f.slow_body_s or f.truncate:
                    return StreamingResponse(_trickle(data, f.slow_body_s, f.truncate), media_type="application/json")
                return Response(data, media_type="application/json")
            if f.not_sse:  # a proxy's error page, with a 200
                return Response(NOT_SSE, media_type="text/html")
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._sse(body, deltas, usage, created, include_usage, f, call), media_type="text/event-stream")

        async def models(request: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])

    def _failure(self, f: Faults, body: dict[str, Any]) -> Response:
        message = f"fake failure {f.fail_status}"
        if f.echo_error:
            last = (body.get("messages") or [{}])[-1]
            message += f": cannot process {last.get('content')!r}"
        headers = {"retry-after": f.retry_after} if f.retry_after else None
        # ensure_ascii (json's default) keeps an echoed lone surrogate as its \\ud800 escape, as real servers do
        return Response(json.dumps({"error": {"message": message, "type": "server_error"}}), status_code=f.fail_status,
                        headers=headers, media_type="application/json")

    async def _sse(self, body: dict[str, Any], deltas: list[str], usage: dict[str, int], created: int,  # type: ignore[no-untyped-def]
                   include_usage: bool, f: Faults, call: tuple[str, str] | None = None):
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body.get("model")}

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in _words(self.reasoning) if self.reasoning else ():
            yield event([{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": None}])
        if call is not None:  # the arguments in two pieces, as real servers split them
            name, args = call
            cut = len(args) // 2
            yield event([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function",
                                                                "function": {"name": name, "arguments": args[:cut]}}]}}])
            yield event([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args[cut:]}}]}}])
            yield event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
            if include_usage and self.send_usage:
                yield event([], usage=usage)
            yield b"data: [DONE]\n\n"
            return
        for i, text in enumerate(deltas):
            if f.drop_after is not None and i >= f.drop_after:
                raise ConnectionAbortedError("fake backend drops the connection")
            if f.error_event_after is not None and i >= f.error_event_after:
                yield b'data: {"error": {"message": "fake upstream failure mid-stream", "type": "server_error", "code": 500}}\n\n'
                return
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if include_usage and self.send_usage:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"


async def _trickle(data: bytes, pause_s: float, truncate: bool) -> AsyncIterator[bytes]:
    """A body in four pieces, ``pause_s`` apart; with ``truncate``, only the first half, then a dropped connection."""
    size = len(data) // 4 + 1
    for start in range(0, len(data), size):
        if truncate and start >= len(data) // 2:
            raise ConnectionAbortedError("fake backend drops the connection mid-body")
        if pause_s:
            await asyncio.sleep(pause_s)
        yield data[start:start + size]


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


def portfolio_yaml(urls: dict[str, tuple[str, str]], routes: dict[str, str] | None = None, read_timeout_s: float = 5.0,
                   cached_ratio: float | None = None) -> str:
    """A portfolio whose models are the fake servers: name -> (base_url, reasoning control); model i costs i + 1 per
    million input tokens (``cached_ratio`` of that when read from the prompt cache) and 2 (i + 1) per million output."""
    models = "\n".join(
        f"  - {{name: {name}, backend: {{base_url: '{url}/v1', served_model: served-{name}, connect_timeout_s: 2, "
        f"read_timeout_s: {read_timeout_s}, total_timeout_s: 10}}, input_usd_per_mtok: {i + 1}, output_usd_per_mtok: {2 * (i + 1)}, "
        + (f"cached_input_usd_per_mtok: {(i + 1) * cached_ratio}, " if cached_ratio is not None else "") + f"reasoning: {ctl}}}"
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
                  shipped_estimators: bool = False, cached_ratio: float | None = None, **settings: Any) -> Iterator[Stack]:
    """The gateway as a real uvicorn server, routing with the deterministic stub estimators
    (or the shipped classifier and difficulty estimator)."""
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import parse_portfolio
    from calibroute.gateway import GatewaySettings, create_app
    from calibroute.router import Router

    merged = {**urls, **(urls_override or {})}
    portfolio = parse_portfolio(portfolio_yaml({n: (merged[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES, read_timeout_s,
                                               cached_ratio))
    router = Router(portfolio) if shipped_estimators else Router(portfolio, classifier=KeywordClassifier(),
                                                                    difficulty=LengthDifficulty())
    ledger = ledger if ledger is not None else MemoryLedger()
    opts = {"retries": 1, "backoff_s": 0.01, "backoff_max_s": 0.02, "ledger_batch_s": 0.0, **settings}
    app = create_app(GatewaySettings(**opts), router=router, ledger=ledger)
    with serve_in_thread(app) as url:
        yield Stack(url, fakes, ledger, app)


@contextmanager
def fresh_stack(servers: tuple[dict[str, FakeModel], dict[str, str]], **options: Any) -> Iterator[Stack]:
    """``gateway_stack`` over the module's fake servers (the ``servers`` fixture), their state reset first."""
    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls, **options) as stack:
        yield stack


def chat_usage(client: Any, stream: bool, **request: Any) -> Any:
    """The usage a chat completion reports, whole or (with include_usage) streamed."""
    if not stream:
        return client.chat.completions.create(**request).usage
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    return chunks[-1].usage


def client_for(stack: Stack) -> Any:
    """The official openai client for a gateway stack, no client-side retries."""
    import openai

    return openai.OpenAI(base_url=stack.v1, api_key="unused", max_retries=0)


def wait_for(predicate: Any, timeout_s: float = 10.0) -> Any:
    """Poll until ``predicate()`` is truthy (what happens on the server after the client has gone)."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return value
