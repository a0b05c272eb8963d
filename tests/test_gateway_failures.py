"""Failure paths before the first byte: retries, fallback, circuit breaker, timeouts, upstream 4xx."""

from __future__ import annotations

import httpx
import openai
import pytest
from fake_backend import client_for, dead_url, gateway_stack
from promtext import sample

SIMPLE = [{"role": "user", "content": "summarize this"}]  # SIMPLE route: small, then mid


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_failure_is_retried_on_the_same_model(servers, fakes, status):
    fakes["small"].fail_times, fakes["small"].fail_status = 1, status
    with gateway_stack(fakes, servers[1]) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
    assert raw.headers["x-calibroute-model"] == "small"
    assert "x-calibroute-fallbacks" not in raw.headers
    assert len(fakes["small"].requests) == 2
    assert gw.ledger.rows[-1].fallback_path == ["small"]


def test_persistent_failure_falls_back_to_the_next_model(servers, fakes):
    fakes["small"].fail_times = 100
    with gateway_stack(fakes, servers[1]) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
        metrics = httpx.get(gw.url + "/metrics").text
    assert raw.parse().choices[0].message.content == "Hello from mid."
    assert raw.headers["x-calibroute-fallbacks"] == "small,mid"
    assert len(fakes["small"].requests) == 2  # one try plus one retry
    assert sample(metrics, "calibroute_fallbacks_total", from_model="small", to_model="mid") == 1.0
    assert sample(metrics, "calibroute_backend_errors_total", model="small", code="backend_unavailable") == 2.0
    row = gw.ledger.rows[-1]
    assert row.status == "ok" and row.model == "mid" and row.fallback_path == ["small", "mid"]


def test_connection_refused_falls_back(servers, fakes):
    with gateway_stack(fakes, servers[1], urls_override={"small": dead_url()}) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
    assert raw.headers["x-calibroute-model"] == "mid"


def test_timeout_before_the_first_byte_falls_back(servers, fakes):
    fakes["small"].delay_s = 2.0
    with gateway_stack(fakes, servers[1], read_timeout_s=0.3, retries=0) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        metrics = httpx.get(gw.url + "/metrics").text
    assert raw.headers["x-calibroute-model"] == "mid" and text == "Hello from mid."
    assert sample(metrics, "calibroute_backend_errors_total", model="small", code="backend_timeout") == 1.0


def test_all_models_failing_returns_the_error_in_openai_format(servers, fakes):
    fakes["small"].fail_times = fakes["mid"].fail_times = 100
    with gateway_stack(fakes, servers[1]) as gw, client_for(gw) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="auto", messages=SIMPLE)
    assert info.value.status_code == 503
    assert info.value.body["code"] == "backend_unavailable" and info.value.body["type"] == "api_error"
    row = gw.ledger.rows[-1]
    assert row.status == "error" and row.http_status == 503 and row.fallback_path == ["small", "mid"]


def test_rate_limited_everywhere_is_a_429_for_the_client(servers, fakes):
    for name in ("small", "mid"):
        fakes[name].fail_times, fakes[name].fail_status = 100, 429
    with gateway_stack(fakes, servers[1], retries=0) as gw, client_for(gw) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="auto", messages=SIMPLE)


def test_upstream_rejecting_the_request_is_returned_without_fallback(servers, fakes):
    fakes["small"].fail_times, fakes["small"].fail_status = 1, 400
    with gateway_stack(fakes, servers[1]) as gw, client_for(gw) as client:
        with pytest.raises(openai.BadRequestError, match="fake failure 400"):
            client.chat.completions.create(model="auto", messages=SIMPLE)
    assert not fakes["mid"].requests
    assert gw.ledger.rows[-1].status == "client_error"


def test_circuit_breaker_takes_a_failing_model_out_for_its_cool_down(servers, fakes):
    fakes["small"].fail_times = 100
    with gateway_stack(fakes, servers[1], retries=0, breaker_failures=2, breaker_cooldown_s=60) as gw, client_for(gw) as client:
        for _ in range(4):
            assert client.chat.completions.create(model="auto", messages=SIMPLE).choices[0].message.content == "Hello from mid."
        health = httpx.get(gw.url + "/healthz").json()
    assert len(fakes["small"].requests) == 2  # then the circuit opened: no more calls
    assert health["circuit_open"] == ["small"]


def test_circuit_closes_again_after_a_successful_trial(servers, fakes):
    fakes["small"].fail_times = 2
    with gateway_stack(fakes, servers[1], retries=0, breaker_failures=2, breaker_cooldown_s=0) as gw, client_for(gw) as client:
        models = [client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE).headers["x-calibroute-model"]
                  for _ in range(3)]
    assert models == ["mid", "mid", "small"]
    assert gw.app.state.gateway.fallback.breaker("small").consecutive == 0


def test_explicit_model_has_no_fallback(servers, fakes):
    fakes["small"].fail_times = 100
    with gateway_stack(fakes, servers[1], retries=0) as gw, client_for(gw) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="small", messages=SIMPLE)
    assert not fakes["mid"].requests
