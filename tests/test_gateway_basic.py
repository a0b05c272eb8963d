"""The gateway end to end: real uvicorn servers on 127.0.0.1, the official openai client."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from fake_backend import gateway_stack, reset
from promtext import sample


def test_explicit_model_passes_through_to_its_backend(gw, client):
    raw = client.chat.completions.with_raw_response.create(model="small", messages=[{"role": "user", "content": "hi"}])
    reply = raw.parse()
    assert reply.choices[0].message.content == "Hello from small."
    assert raw.headers["x-calibroute-model"] == "small"
    assert raw.headers["x-calibroute-rule"] == "explicit_model"
    sent = gw.fakes["small"].requests[-1]
    assert sent["model"] == "served-small"


def test_auto_routes_by_class_and_reports_it_in_headers(gw, client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "summarize this sentence please"}])
    assert raw.headers["x-calibroute-class"] == "SIMPLE"
    assert raw.headers["x-calibroute-model"] == "small"
    assert raw.headers["x-calibroute-budget"] == "max 256 tok, thinking off"
    assert float(raw.headers["x-calibroute-cost-usd"]) > 0
    assert raw.parse().choices[0].message.content == "Hello from small."


def test_alias_routes_to_its_class_without_classifying(gw, client):
    raw = client.chat.completions.with_raw_response.create(
        model="calibroute-simple", messages=[{"role": "user", "content": "write a poem"}])
    assert raw.headers["x-calibroute-class"] == "SIMPLE"
    assert raw.headers["x-calibroute-rule"] == "hint_class"


def test_unsure_classification_takes_the_general_route(gw, client):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hello there"}])
    assert raw.headers["x-calibroute-class"] == "GENERAL"
    assert raw.headers["x-calibroute-model"] == "mid"


def test_escalation_sends_hard_prompts_to_the_stronger_model(gw, client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "solve this hard problem"}])
    assert raw.headers["x-calibroute-model"] == "claude"
    assert raw.headers["x-calibroute-rule"] == "escalated"
    sent = gw.fakes["claude"].requests[-1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] == 8192


def test_client_max_tokens_caps_the_routed_budget(gw, client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "summarize this"}])
    assert raw.headers["x-calibroute-budget"].startswith("max 100 tok")
    assert gw.fakes["small"].requests[-1]["max_tokens"] == 100


def test_client_cannot_raise_the_routed_budget(gw, client):
    client.chat.completions.create(model="auto", max_completion_tokens=100_000,
                                   messages=[{"role": "user", "content": "summarize this"}])
    sent = gw.fakes["small"].requests[-1]
    assert sent["max_tokens"] == 256
    assert "max_completion_tokens" not in sent


def test_client_reasoning_effort_caps_effort_and_enable_thinking_is_translated(gw, client):
    client.chat.completions.create(model="effort", reasoning_effort="low",
                                   messages=[{"role": "user", "content": "prove this"}])
    sent = gw.fakes["effort"].requests[-1]
    assert sent["reasoning_effort"] == "low"
    assert sent["max_completion_tokens"] == 4096
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello there"}])
    sent = gw.fakes["mid"].requests[-1]
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert sent["max_tokens"] == 2048


def test_usage_reports_reasoning_tokens_field(gw, client):
    reply = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_every_request_leaves_a_ledger_row(gw, client):
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi there"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    ok, bad = gw.ledger.rows
    assert (ok.status, ok.http_status, ok.model, ok.fallback_path) == ("ok", 200, "small", ["small"])
    assert ok.prompt_tokens == 2 and ok.completion_tokens == 3 and ok.cost_usd > 0
    assert ok.baseline_cost_usd >= ok.cost_usd
    assert (bad.status, bad.http_status) == ("client_error", 404)


def test_models_lists_configured_models_and_aliases(gw, client):
    ids = {m.id for m in client.models.list()}
    assert {"small", "mid", "thinker", "effort", "claude", "auto", "calibroute-reasoning"} <= ids


def test_route_endpoint_returns_the_decision_without_calling_a_backend(gw):
    r = httpx.post(gw.v1 + "/route", json={"model": "auto", "messages": [{"role": "user", "content": "prove it"}]})
    assert r.status_code == 200
    data = r.json()
    assert data["task_class"] == "REASONING" and data["model"] == "thinker"
    assert data["upstream_params"] == {"max_tokens": 4096}
    assert all(not f.requests for f in gw.fakes.values())


def test_health_and_metrics_endpoints(gw, client):
    assert httpx.get(gw.url + "/healthz").json()["status"] == "ok"
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(gw.url + "/metrics").text
    labels = {"route": "direct", "class": "SIMPLE", "model": "small"}
    assert sample(text, "calibroute_requests_total", **labels, status="ok") == 1.0
    assert sample(text, "calibroute_tokens_total", kind="completion", **labels) == 3.0
    assert sample(text, "calibroute_request_duration_seconds_count", **labels) == 1.0
    assert (sample(text, "calibroute_cost_usd_total", **labels) or 0) > 0


def test_async_client_gets_the_same_answer(gw):
    async def ask() -> str | None:
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as c:
            reply = await c.chat.completions.create(model="mid", messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content

    assert asyncio.run(ask()) == "Hello from mid."


def test_grouped_ledger_rows_are_handed_over_at_shutdown_at_the_latest(servers):
    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls, ledger_batch_s=60) as gw:
        with openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as client:
            for _ in range(2):
                client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
        assert gw.ledger.rows == []  # still grouped
    assert [r.status for r in gw.ledger.rows] == ["ok", "ok"]


def test_backend_flag_native_thinking_budget_sends_vllms_thinking_token_budget():
    from fake_backend import MemoryLedger
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import Budget, parse_portfolio
    from calibroute.gateway import GatewaySettings, create_app
    from calibroute.router import Router

    text = ("models:\n"
            "  - {name: q, backend: {base_url: 'http://127.0.0.1:9/v1', native_thinking_budget: true}, reasoning: enable_thinking,"
            " input_usd_per_mtok: 1, output_usd_per_mtok: 2}\n"
            "  - {name: p, backend: {base_url: 'http://127.0.0.1:9/v1'}, reasoning: enable_thinking,"
            " input_usd_per_mtok: 1, output_usd_per_mtok: 2}\n"
            "routes:\n" + "".join(f"  {c}: {{models: [q, p], budget: {{max_output_tokens: 64}}}}\n"
                                  for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")))
    portfolio = parse_portfolio(text, "native.yaml")
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    gateway = create_app(GatewaySettings(), router=router, ledger=MemoryLedger()).state.gateway
    budget = Budget(max_output_tokens=4096, thinking=True, thinking_budget_tokens=1024)
    assert gateway.plan("q", budget).params["thinking_token_budget"] == 1024
    assert "thinking_token_budget" not in gateway.plan("p", budget).params
