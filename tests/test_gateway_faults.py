"""Bad clients and bad backends (issue 12): what the gateway does with each fault, and what the ledger says."""

from __future__ import annotations

import asyncio
import logging
import socket
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from fake_backend import NEGATIVE_USAGE, chat_usage, client_for, gateway_stack, wait_for

from calibroute.errors import BackendUnavailable

SIMPLE = [{"role": "user", "content": "summarize this"}]  # SIMPLE route: small, then mid


def chat_body(content: str, **extra) -> bytes:
    return ('{"model": "auto", "messages": [{"role": "user", "content": "%s"}]' % content
            + "".join(f', "{k}": {v}' for k, v in extra.items()) + "}").encode()


# -- client input that used to become a 500 -------------------------------------------------
@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_lone_surrogate_escape_is_replaced_not_a_500(servers, fakes, stream):
    with gateway_stack(fakes, servers[1], shipped_estimators=True) as gw:
        r = httpx.post(gw.v1 + "/chat/completions", content=chat_body("summarize \\ud800 this \\udfff", stream=stream))
    assert r.status_code == 200, r.text
    sent = next(f for f in fakes.values() if f.requests).requests[-1]
    assert sent["messages"][0]["content"] == "summarize \ufffd this \ufffd"


@pytest.mark.parametrize("stream", ["false", "true"])
def test_json_nested_just_below_the_parsers_limit_is_a_400(servers, fakes, stream):
    """Depths that json.loads accepts but re-encoding for the backend could not (~966-990)."""
    with gateway_stack(fakes, servers[1]) as gw:
        for depth in range(950, 1000, 2):
            body = chat_body("hi", stream=stream, x="[" * depth + "]" * depth)
            r = httpx.post(gw.v1 + "/chat/completions", content=body)
            assert r.status_code == 400, (depth, r.text)
            assert r.json()["error"]["code"] == "invalid_input"
        ok = httpx.post(gw.v1 + "/chat/completions", content=chat_body("hi", x="[" * 99 + "]" * 99))
    assert ok.status_code == 200


# -- the circuit breaker's half-open state --------------------------------------------------
def test_half_open_circuit_admits_exactly_one_trial_at_a_time(servers, fakes):
    fakes["small"].hang = True  # failing slowly: the trial stays in flight (read timeout) while the burst arrives
    with gateway_stack(fakes, servers[1], read_timeout_s=1.5, retries=0, breaker_failures=1, breaker_cooldown_s=0) as gw:
        gateway = gw.app.state.gateway
        with client_for(gw) as client:  # trips the circuit (cool-down 0: half-open at once)
            assert client.chat.completions.with_raw_response.create(
                model="auto", messages=SIMPLE).headers["x-calibroute-model"] == "mid"
        calls_before = len(fakes["small"].requests)

        async def burst() -> list[str]:
            async with openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as c:
                replies = await asyncio.gather(*(c.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
                                                 for _ in range(8)))
            return [r.headers["x-calibroute-model"] for r in replies]

        models = asyncio.run(burst())
    assert len(fakes["small"].requests) - calls_before == 1  # the one trial; it failed, so the circuit re-opened
    assert models == ["mid"] * 8
    assert gateway.fallback.breaker("small").trial is None


def test_breaker_trial_is_released_by_its_holder_only():
    from calibroute.gateway.fallback import Breaker

    b = Breaker(failures=1, cooldown_s=0)
    b.record_failure(0.0, "first")
    assert b.admit(1.0, "trial") and not b.admit(1.0, "other")
    b.release("other")  # not the holder: still one trial in flight
    assert not b.admit(1.0, "third")
    b.release("trial")
    assert b.admit(1.0, "third")


# -- a streamed 200 that is not SSE ---------------------------------------------------------
def test_streamed_200_that_is_not_sse_falls_back_and_the_row_says_why(servers, fakes):
    fakes["small"].not_sse = True
    with gateway_stack(fakes, servers[1], retries=0) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello from mid." and raw.headers["x-calibroute-fallbacks"] == "small,mid"
    row = gw.ledger.rows[-1]
    assert row.status == "ok" and row.fallback_path == ["small", "mid"]
    assert "not an SSE stream" in row.error


def test_not_sse_with_no_fallback_is_an_error_before_the_first_byte(servers, fakes):
    fakes["small"].not_sse = True
    with gateway_stack(fakes, servers[1], retries=0) as gw, client_for(gw) as client:
        with pytest.raises(openai.InternalServerError) as info:
            list(client.chat.completions.create(model="small", messages=SIMPLE, stream=True))
    assert info.value.status_code == 503 and "not an SSE stream" in info.value.body["message"]
    assert gw.ledger.rows[-1].status == "error"


# -- usage a backend should never report ----------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("usage", [NEGATIVE_USAGE, {"prompt_tokens": 10**12, "completion_tokens": 10**12}])
def test_negative_or_absurd_usage_is_estimated_not_billed(servers, fakes, stream, usage):
    fakes["small"].usage_override = usage
    with gateway_stack(fakes, servers[1]) as gw, client_for(gw) as client:
        reported = chat_usage(client, stream, model="small", messages=SIMPLE)
    row = gw.ledger.rows[-1]
    assert row.status == "ok" and 0 < row.prompt_tokens < 100 and 0 < row.completion_tokens < 100
    assert 0 < row.cost_usd < 0.001
    assert (reported.prompt_tokens, reported.completion_tokens) == (row.prompt_tokens, row.completion_tokens)


def test_plausible_usage_drops_only_the_broken_counts():
    from calibroute.backends.base import plausible_usage

    usage = {"prompt_tokens": 12, "completion_tokens": -5, "total_tokens": 7,
             "completion_tokens_details": {"reasoning_tokens": True}}
    assert plausible_usage(usage, 1000) == {"prompt_tokens": 12, "total_tokens": 7, "completion_tokens_details": {}}
    good = {"prompt_tokens": 12, "completion_tokens": 5}
    assert plausible_usage(good, 1000) is good


# -- clients that leave or dawdle -----------------------------------------------------------
def half_sent(url: str, declared: int, sent: bytes) -> socket.socket:
    """A raw connection that declares a body of ``declared`` bytes and sends only ``sent``."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"content-length: {declared}\r\n\r\n").encode()
    sock.sendall(head + sent)
    return sock


def test_client_disconnect_mid_upload_is_a_499_without_a_traceback(servers, fakes, caplog):
    with gateway_stack(fakes, servers[1]) as gw, caplog.at_level(logging.ERROR, logger="calibroute.gateway"):
        half_sent(gw.url, 1000, b'{"model": "auto", "messages": [').close()
        row = wait_for(lambda: gw.ledger.rows and gw.ledger.rows[-1])
    assert (row.status, row.http_status, row.cost_usd) == ("error", 499, 0.0)
    assert "disconnected" in row.error
    assert not [r for r in caplog.records if r.exc_info]


def test_a_slow_upload_gets_408(servers, fakes):
    with gateway_stack(fakes, servers[1], body_timeout_s=0.3) as gw:
        sock = half_sent(gw.url, 1000, b'{"model": "auto", "messages": [')
        sock.settimeout(10)
        try:
            answer = sock.recv(4096)
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer
    assert gw.ledger.rows[-1].http_status == 408


@pytest.mark.parametrize("stream", [False, True])
def test_client_leaving_before_the_answer_cancels_the_backend_call(servers, fakes, stream):
    fakes["small"].hang = True
    with gateway_stack(fakes, servers[1], read_timeout_s=30) as gw:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.v1 + "/chat/completions", json={"model": "small", "messages": SIMPLE, "stream": stream}, timeout=0.5)
        row = wait_for(lambda: gw.ledger.rows and gw.ledger.rows[-1])
        wait_for(lambda: fakes["small"].abandoned == 1)  # the gateway hung up on the backend
    assert (row.status, row.http_status, row.error) == ("error", 499, "client disconnected")
    assert row.prompt_tokens > 0 and row.completion_tokens == 0  # the prompt was sent; nothing came back


# -- time limits and Retry-After ------------------------------------------------------------
def test_request_deadline_spans_retries_and_fallbacks(servers, fakes):
    fakes["small"].hang = fakes["mid"].hang = True
    with gateway_stack(fakes, servers[1], read_timeout_s=5, request_timeout_s=0.5) as gw, client_for(gw) as client:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="auto", messages=SIMPLE)
    assert info.value.status_code == 504 and info.value.body["code"] == "request_timeout"
    row = gw.ledger.rows[-1]
    assert (row.status, row.http_status, row.cost_usd) == ("error", 504, 0.0)
    wait_for(lambda: fakes["small"].abandoned == 1)


def test_retry_after_longer_than_the_cap_moves_on_to_the_next_model(servers, fakes):
    fakes["small"].fail_times, fakes["small"].fail_status, fakes["small"].retry_after = 5, 429, "60"
    with gateway_stack(fakes, servers[1], retries=1, retry_after_max_s=5) as gw, client_for(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
    assert raw.headers["x-calibroute-model"] == "mid"
    assert len(fakes["small"].requests) == 1  # not retried: it asked for a minute


def test_retry_after_is_passed_on_with_the_429(servers, fakes):
    for name in ("small", "mid"):
        fakes[name].fail_times, fakes[name].fail_status, fakes[name].retry_after = 5, 429, "7"
    with gateway_stack(fakes, servers[1], retries=0) as gw, client_for(gw) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="auto", messages=SIMPLE)
    assert info.value.response.headers["retry-after"] == "7"


def test_a_short_retry_after_is_waited_before_the_retry(servers):
    from calibroute.backends.base import parse_retry_after
    from calibroute.gateway.fallback import Fallback
    from calibroute.gateway.metrics import GatewayMetrics

    fb = Fallback(GatewayMetrics(), retries=1, backoff_s=0.01, backoff_max_s=0.02, breaker_failures=5,
                  breaker_cooldown_s=1, retry_after_max_s=5)
    exc = BackendUnavailable("busy")
    exc.retry_after_s = 3.0
    assert fb.delay(0, exc) == 3.0
    exc.retry_after_s = 6.0
    assert fb.delay(0, exc) is None
    assert parse_retry_after("2") == 2.0 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now


def test_an_echoed_lone_surrogate_in_a_backend_error_becomes_storable_text():
    from calibroute.backends.openai_compat import _error_detail

    detail = _error_detail(b'{"error": {"message": "cannot process \\ud800"}}')
    assert detail == "cannot process ?"
    detail.encode("utf-8")


def test_a_backend_echoing_the_prompt_in_its_error_gets_the_cleaned_prompt(servers, fakes):
    fakes["small"].fail_times, fakes["small"].echo_errors = 100, True
    with gateway_stack(fakes, servers[1], retries=0) as gw:
        r = httpx.post(gw.v1 + "/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": "x"}]},
                       headers={"content-type": "application/json"})
    assert r.status_code == 503 and "cannot process 'x'" in r.json()["error"]["message"]


# -- every fault kind of the fake backend, streamed and not ---------------------------------
# kind -> (what the client sees not streamed, streamed): "fallback" (mid answers), "small" (no effect
# on that form, or invisible), "error_event" (the stream began, then ended with an error event).
EVERY_FAULT = {
    "status_500": ("fallback", "fallback"), "status_429": ("fallback", "fallback"), "hang": ("fallback", "fallback"),
    "echo_error": ("fallback", "fallback"), "not_sse": ("small", "fallback"), "truncate": ("fallback", "small"),
    "slow_body": ("small", "small"), "negative_usage": ("small", "small"),
    "drop": ("small", "error_event"), "error_event": ("small", "error_event"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", list(EVERY_FAULT))
def test_every_fault_kind_has_its_documented_outcome(servers, fakes, kind, stream):
    fakes["small"].fault_rate, fakes["small"].fault_kinds = 1.0, (kind,)
    expected = EVERY_FAULT[kind][stream]
    with gateway_stack(fakes, servers[1], retries=0, read_timeout_s=1) as gw, client_for(gw) as client:
        try:
            if stream:
                raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE, stream=True)
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            else:
                raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
                text = raw.parse().choices[0].message.content
            seen = "fallback" if raw.headers.get("x-calibroute-fallbacks") == "small,mid" else "small"
        except openai.APIError:
            seen, text = "error_event", None
    assert fakes["small"].faults_injected == {kind: 1}
    assert seen == expected
    row = gw.ledger.rows[-1]
    assert len(gw.ledger.rows) == 1 and row.cost_usd >= 0 and row.prompt_tokens >= 0
    if expected == "error_event":
        assert (row.status, row.http_status) == ("error", 200) and row.error.startswith("after streaming began")
    else:
        assert text == f"Hello from {'mid' if expected == 'fallback' else 'small'}." and row.status == "ok"
