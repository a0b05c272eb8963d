"""The chat completions pipeline: authenticate, parse, route, translate the budget, call with
fallback, answer (whole or streamed), and record one ledger row and the metrics.

Data flows one way: request -> Router decision -> per-model budget translation ->
backend (with retries/fallback) -> response -> ledger. Every request ends in ``finish``
exactly once, whatever happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..backends.base import Backend, UpstreamStream
from ..backends.native import NativeBackend
from ..budgets.forcing import ThinkForcer, initial_body
from ..budgets.translate import Translation, translate_budget
from ..config import Budget, Portfolio
from ..conversation import messages_text
from ..ledger.base import LedgerRow, LedgerSink
from ..router import Router
from ..types import Decision
from .affinity import Affinity, answers_a_tool_call, conversation_key, conversation_tokens
from .anthropic import AnthropicDialect
from .dialects import CHAT, Dialect
from .errors import ClientDisconnected, RateLimited, SpendLimitExceeded, Unauthorized, status_of
from .fallback import Attempted, Fallback
from .guard import guarded
from .ledgerbuf import CoalescingSink
from .metrics import GatewayMetrics
from .passthrough import native_body, relay_native
from .requests import ChatRequest, parse_json_object, read_body
from .settings import GatewaySettings
from .ratelimit import RateLimiter
from .spend import SpendGuard
from .responses import RESPONSES
from .streaming import Tally, assemble, relay
from .thinking_signature import ThinkingSigner

log = logging.getLogger("calibroute.gateway")


@dataclass
class Outcome:
    """What one request did: the source of its headers, metrics and ledger row."""

    request_id: str
    started: float
    route: str = "unparsed"
    stream: bool = False
    decision: Decision | None = None
    budget: Budget | None = None
    tried: Attempted = field(default_factory=Attempted)
    tally: Tally | None = None
    api_key_id: str | None = None
    prompt: str | None = None
    forcer: ThinkForcer | None = None
    rate_tokens: int | None = None  # tokens the rate limiter charged on admission, settled in ``finish``
    routed_model: str | None = None  # the router's choice, when affinity kept the conversation on another model
    routed_cached_share: float = 0.0  # how much of the conversation that model's cache holds, as affinity estimates

    @property
    def model(self) -> str | None:
        return self.tried.path[-1] if self.tried.path else (self.decision.model if self.decision else None)


class Gateway:
    def __init__(self, settings: GatewaySettings, portfolio: Portfolio, router: Router,
                 backends: dict[str, Backend], ledger: LedgerSink, metrics: GatewayMetrics) -> None:
        self.settings, self.portfolio, self.router = settings, portfolio, router
        self.backends, self.ledger, self.metrics = backends, ledger, metrics
        self.rows = CoalescingSink(ledger, settings.ledger_batch_s)
        self.forcing = settings.forcing()
        self.largest = portfolio.largest_model
        self.started = time.time()
        self._ids = itertools.count(1)
        self._id_prefix = "req_" + secrets.token_hex(8)  # 64 bits: ids stay unique across processes sharing a ledger
        self.affinity = Affinity(portfolio, jump=settings.affinity_jump, release=settings.affinity_release) if settings.affinity else None
        # The client APIs by path; each gateway signs its own thinking blocks.
        self.dialects: dict[str, Dialect] = {"/v1/chat/completions": CHAT, "/v1/responses": RESPONSES,
                                             "/v1/messages": AnthropicDialect(ThinkingSigner(settings.thinking_key))}
        self.spend = SpendGuard(ledger, portfolio, settings.reservation_ttl_s)
        self.rates = RateLimiter(ledger, settings.redis_url)
        self.fallback = Fallback(metrics, retries=settings.retries, backoff_s=settings.backoff_s,
                                 backoff_max_s=settings.backoff_max_s, breaker_failures=settings.breaker_failures,
                                 breaker_cooldown_s=settings.breaker_cooldown_s,
                                 retry_after_max_s=settings.retry_after_max_s)

    # -- entry points -------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """The client's key id when keys are enabled; raises 401 / 429 in OpenAI format."""
        keys_enabled = getattr(self.ledger, "keys_enabled", None)
        if keys_enabled is None or not keys_enabled():
            return None
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "").strip()
        if not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')")
        key = self.ledger.authenticate(token)  # type: ignore[attr-defined]
        if key is None:
            raise Unauthorized("invalid or revoked API key")
        if key.spend_limit_usd is not None and key.spent_usd >= key.spend_limit_usd:
            exc = SpendLimitExceeded(f"API key {key.name!r} reached its spend limit of ${key.spend_limit_usd:.2f}")
            exc.key_id = str(key.id)
            raise exc
        return str(key.id)

    async def decide(self, request: Request, dialect: Dialect = CHAT) -> tuple[ChatRequest, Decision]:
        raw = await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout_s)
        chat = dialect.parse(parse_json_object(raw), self.portfolio)
        # A worker thread: the encoder classifier computes for milliseconds (onnxruntime releases the GIL),
        # and the event loop keeps streaming other requests meanwhile.
        decision = await asyncio.to_thread(self.router.decide, messages=chat.body["messages"], hints=chat.hints)
        return chat, decision

    async def chat(self, request: Request, dialect: Dialect = CHAT) -> Response:
        """One request of any dialect (chat completions, Anthropic Messages, ...) through the pipeline."""
        out = Outcome(request_id=f"{self._id_prefix}{next(self._ids):08x}", started=time.perf_counter())
        try:
            out.api_key_id = self.authenticate(request)
            chat, out.decision = await self.decide(request, dialect)
            if self.affinity is not None:
                key = conversation_key(chat.body, chat.source)
                routed, tokens = out.decision, conversation_tokens(chat.body)
                out.routed_cached_share = self.affinity.cached_share(key, routed.model, tokens)
                out.decision = self.affinity.apply(key, routed, tool_turn=answers_a_tool_call(chat.body), tokens=tokens)
                if out.decision.model != routed.model:
                    out.routed_model = routed.model
            out.route, out.stream = chat.route, chat.stream
            out.budget = out.decision.budget
            out.tally = Tally(out.decision.input_tokens_est)
            out.rate_tokens = await self.rates.admit(out.api_key_id, out.decision.input_tokens_est)
            await self.spend.reserve(out.api_key_id, out.request_id, out.decision)  # released when the row is written
            if self.settings.store_prompts:
                out.prompt = messages_text(chat.body["messages"])
            remaining = self.settings.request_timeout_s - (time.perf_counter() - out.started)
            async with guarded(request.receive, remaining):  # 504 past the deadline, 499 when the client leaves
                if chat.stream:
                    return await self._stream(chat, out.decision, out, dialect)
                return await self._complete(chat, out.decision, out, dialect)
        except Exception as exc:
            out.api_key_id = out.api_key_id or getattr(exc, "key_id", None)
            self.finish(out, exc)
            return dialect.error_response(exc, headers=self.headers(out))

    # -- the two response shapes ------------------------------------------------------------
    def plan(self, model: str, budget: Budget) -> Translation:
        spec = self.portfolio.model(model)
        floor = self.settings.think_floor_by_effort.get(budget.effort or "", 0)
        native = spec.backend.native_thinking_budget or model in self.settings.native_thinking_budget
        return translate_budget(budget, spec.reasoning, native_thinking_budget=native, min_think_tokens=floor)

    def _stream_body(self, chat: ChatRequest, tr: Translation) -> dict[str, Any]:
        body = tr.apply(chat.body)
        body["stream"] = True
        options = chat.body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return initial_body(body, tr.think, self.forcing) if tr.think is not None else body

    def native(self, chat: ChatRequest, dialect: Dialect | None, model: str) -> NativeBackend | None:
        """The model's backend when it speaks the client's API itself: the request then passes through natively."""
        backend = self.backends[model]
        api = dialect.native_api if dialect is not None else None
        if api is None or chat.source is None or getattr(backend, "api_name", None) != api:
            return None
        return backend  # type: ignore[return-value]

    async def _open(self, chat: ChatRequest, decision: Decision, out: Outcome, dialect: Dialect | None = None
                    ) -> tuple[Translation, dict[str, Any], UpstreamStream, NativeBackend | None]:
        """The first stream any model of the route opens; natively when its backend speaks ``dialect``'s API."""
        async def attempt(model: str) -> tuple[Translation, dict[str, Any], UpstreamStream, NativeBackend | None]:
            tr = self.plan(model, decision.budget)
            if (native := self.native(chat, dialect, model)) is not None:
                body = native_body(native.api_name, chat, tr)
                return tr, body, await native.native_stream(body), native
            body = self._stream_body(chat, tr)
            return tr, body, await self.backends[model].open_stream(body), None

        _, result = await self.fallback.run([decision.model, *decision.fallbacks], attempt, out.tried)
        out.budget = result[0].budget
        return result

    def _forcer(self, tr: Translation, body: dict[str, Any], stream: UpstreamStream, model: str) -> ThinkForcer | None:
        if tr.think is None:
            return None
        return ThinkForcer(stream, self.backends[model].open_stream, body, tr.think, self.forcing)

    async def _stream(self, chat: ChatRequest, decision: Decision, out: Outcome, dialect: Dialect) -> Response:
        tr, body, stream, native = await self._open(chat, decision, out, dialect)
        assert out.tally is not None
        headers = self.headers(out, cost=decision.estimated_cost_usd)
        headers["cache-control"] = "no-cache"
        if native is not None:
            events = relay_native(stream, native.chunks(), out.tally, finish=lambda exc: self.finish(out, exc, streamed=True),
                                  error_event=dialect.error_event, on_final=lambda data: dialect.native_answer(chat, data),
                                  close=stream.aclose)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        forcer = out.forcer = self._forcer(tr, body, stream, out.model or decision.model)
        close = forcer.aclose if forcer is not None else stream.aclose
        events = aiter(forcer) if forcer is not None else aiter(stream)
        chunks = relay(events, close, out.tally, include_usage=chat.include_usage, forcer=forcer,
                       finish=lambda exc: self.finish(out, exc, streamed=True),
                       ready=getattr(stream, "ready", None) if forcer is None else None)
        return StreamingResponse(dialect.stream(chat, chunks, out), media_type="text/event-stream", headers=headers)

    async def _complete(self, chat: ChatRequest, decision: Decision, out: Outcome, dialect: Dialect) -> Response:
        assert out.tally is not None
        first = self.plan(decision.model, decision.budget)
        if first.think is not None:  # forcing needs the stream; the client still gets one JSON body
            tr, body, stream, _ = await self._open(chat, decision, out)
            forcer = out.forcer = self._forcer(tr, body, stream, out.model or decision.model)
            try:
                data = await assemble(aiter(forcer) if forcer else aiter(stream), out.tally, forcer)
            finally:
                await (forcer.aclose() if forcer else stream.aclose())
        else:
            async def attempt(model: str) -> tuple[Translation, dict[str, Any], NativeBackend | None]:
                tr = self.plan(model, decision.budget)
                if (native := self.native(chat, dialect, model)) is not None:
                    return tr, await native.native_complete(native_body(native.api_name, chat, tr)), native
                return tr, await self.backends[model].complete(tr.apply(chat.body)), None

            _, (tr, data, native) = await self.fallback.run([decision.model, *decision.fallbacks], attempt, out.tried)
            out.budget = tr.budget
            if native is not None:  # the backend's own answer, counted through its API's translation
                out.tally.see(native.api.completion(data))
                self.finish(out, None)
                dialect.native_answer(chat, data)
                return Response(json.dumps(data), media_type="application/json", headers=self.headers(out))
            out.tally.see(data)
            usage = data.get("usage")
            data["usage"] = {**(usage if isinstance(usage, dict) else {}), **out.tally.usage_block()}
        self.finish(out, None)
        return Response(json.dumps(dialect.complete(chat, data, out)), media_type="application/json", headers=self.headers(out))

    # -- accounting -------------------------------------------------------------------------
    def cost(self, out: Outcome) -> tuple[float, float]:
        """(cost, baseline): cached prompt tokens at each model's cached price."""
        if out.tally is None or out.model is None:
            return 0.0, 0.0
        p, c, cached = out.tally.prompt_tokens, out.tally.completion_tokens, out.tally.cached_tokens
        return self.portfolio.model(out.model).cost_usd(p, c, cached), self.largest.cost_usd(p, c, cached)

    def savings(self, out: Outcome, cost: float) -> tuple[float, float]:
        """(what the prompt cache saved, what affinity saved): the latter for a turn affinity kept on its model,
        as the routed model's cost for the same tokens with what its cache held of the conversation (affinity's
        estimate: what it last sent there) minus this turn's cost; negative when staying cost more."""
        assert out.tally is not None and out.model is not None
        spec = self.portfolio.model(out.model)
        cache_saved = spec.cache_saving_usd(out.tally.cached_tokens)
        if out.routed_model is None or out.routed_model == out.model:
            return cache_saved, 0.0
        routed = self.portfolio.model(out.routed_model)
        p = out.tally.prompt_tokens
        return cache_saved, routed.cost_usd(p, out.tally.completion_tokens, round(p * out.routed_cached_share)) - cost

    def headers(self, out: Outcome, cost: float | None = None) -> dict[str, str]:
        h = {"x-request-id": out.request_id}
        if out.decision is not None:
            h["x-calibroute-class"] = out.decision.task_class.value
            h["x-calibroute-rule"] = out.decision.rule
        if out.budget is not None:
            h["x-calibroute-budget"] = out.budget.describe()
        if out.model is not None:
            h["x-calibroute-model"] = out.model
            h["x-calibroute-cost-usd"] = f"{cost if cost is not None else self.cost(out)[0]:.8f}"
        if len(out.tried.path) > 1:
            h["x-calibroute-fallbacks"] = ",".join(out.tried.path)
        return h

    def verdict(self, out: Outcome, exc: BaseException | None, streamed: bool) -> tuple[int, str, str | None, bool]:
        """(HTTP status, ledger status, error text, billed?) for how a request ended. Billed: the
        tokens it consumed count (an answer, a stream cut short, a backend call the client left)."""
        if exc is None:
            recovered = f"recovered from: {out.tried.last_error}" if out.tried.last_error else None
            return 200, "ok", recovered, True
        if isinstance(exc, ClientDisconnected) or not isinstance(exc, Exception):  # not Exception: cancelled
            return 499, "error", "client disconnected", True
        if streamed:  # the client already has a 200: the stream ended early
            return 200, "error", f"after streaming began: {exc}", True
        http = status_of(exc)
        if http in (401, 403) or isinstance(exc, (SpendLimitExceeded, RateLimited)):
            status = "rejected"
        elif 400 <= http < 500 and http != 429:
            status = "client_error"
        else:
            status = "error"
        return http, status, str(exc) or type(exc).__name__, False

    def finish(self, out: Outcome, exc: BaseException | None, *, streamed: bool = False) -> None:
        """Metrics and one ledger row; never raises into the request path."""
        try:
            http, status, error, billed = self.verdict(out, exc, streamed)
            cost, baseline = self.cost(out)
            tally = out.tally
            p = c = r = cached = 0
            cache_saved = affinity_saved = 0.0
            if tally is not None and out.model is not None and billed:
                p, c, r, cached = tally.prompt_tokens, tally.completion_tokens, tally.reasoning_tokens, tally.cached_tokens
                cache_saved, affinity_saved = self.savings(out, cost)
            else:
                cost = baseline = 0.0
            self.rates.settle(out.api_key_id, out.rate_tokens, p + c)
            cls = out.decision.task_class.value if out.decision else "none"
            model = out.model or "none"
            m = self.metrics
            m.requests.inc(out.route, cls, model, status)
            if out.forcer is not None:
                if out.forcer.forced_close:
                    m.forced.inc(model, "close")
                if out.forcer.waits:
                    m.forced.inc(model, "wait", value=out.forcer.waits)
            elapsed = time.perf_counter() - out.started
            m.latency.observe(elapsed, out.route, cls, model)
            if p or c:
                m.tokens.inc("prompt", out.route, cls, model, value=p)
                m.tokens.inc("completion", out.route, cls, model, value=c)
                m.tokens.inc("reasoning", out.route, cls, model, value=r)
                if cached:
                    m.tokens.inc("cached", out.route, cls, model, value=cached)
                m.cost.inc(out.route, cls, model, value=cost)
            self.rows.record(LedgerRow(
                request_id=out.request_id, status=status, http_status=http,
                task_class=out.decision.task_class.value if out.decision else None, model=out.model,
                route_rule=out.decision.rule if out.decision else None,
                budget=out.budget.describe() if out.budget else None,
                prompt_tokens=p, completion_tokens=c, reasoning_tokens=r, cost_usd=cost, baseline_cost_usd=baseline,
                latency_ms=round(elapsed * 1000, 3), fallback_path=list(out.tried.path), stream=out.stream,
                api_key_id=out.api_key_id, error=error, prompt=out.prompt,
                confidence=out.decision.confidence if out.decision else None,
                reason=out.decision.reason if out.decision else None,
                cached_tokens=cached, cache_saved_usd=cache_saved, affinity_saved_usd=affinity_saved,
            ))
        except Exception:  # the ledger or metrics must never take a response down
            log.exception("could not record request %s", out.request_id)
