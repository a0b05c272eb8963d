"""Bad client input gets a 4xx in the OpenAI error format, never a 500; API keys and spend limits."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from fake_backend import gateway_stack, reset

from calibroute.ledger import open_ledger


@pytest.fixture
def gw(servers):
    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls, max_body_bytes=2000) as stack:
        yield stack


MSG = [{"role": "user", "content": "hi"}]
BAD_BODIES = {
    "malformed json": (b'{"model": "auto", "messages": [', 400),
    "empty body": (b"", 400),
    "not utf-8": (b'{"model": "\xff\xfe"}', 400),
    "array body": (b"[1, 2]", 400),
    "missing messages": (b'{"model": "auto"}', 400),
    "empty messages": (b'{"model": "auto", "messages": []}', 400),
    "messages not a list": (b'{"model": "auto", "messages": "hi"}', 400),
    "message without role": (b'{"model": "auto", "messages": [{"content": "hi"}]}', 400),
    "message not an object": (b'{"model": "auto", "messages": ["hi"]}', 400),
    "content of wrong type": (b'{"model": "auto", "messages": [{"role": "user", "content": 5}]}', 400),
    "only whitespace to route": (b'{"model": "auto", "messages": [{"role": "user", "content": "  "}]}', 400),
    "model not a string": (b'{"model": 3, "messages": [{"role": "user", "content": "hi"}]}', 400),
    "stream not a boolean": (b'{"model": "auto", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}', 400),
    "negative max_tokens": (b'{"model": "auto", "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]}', 400),
    "max_tokens as string": (b'{"model": "auto", "max_tokens": "9", "messages": [{"role": "user", "content": "hi"}]}', 400),
    "max_tokens as bool": (b'{"model": "auto", "max_tokens": true, "messages": [{"role": "user", "content": "hi"}]}', 400),
    "unknown effort": (b'{"model": "auto", "reasoning_effort": "max", "messages": [{"role": "user", "content": "hi"}]}', 400),
    "stream_options not an object": (b'{"model": "auto", "stream_options": 1, "messages": [{"role": "user", "content": "hi"}]}', 400),
    "n zero": (b'{"model": "auto", "n": 0, "messages": [{"role": "user", "content": "hi"}]}', 400),
    "unknown model": (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404),
    "oversized body": (b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * 5000 + b'"}]}', 413),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_input_is_a_4xx_in_openai_error_format(gw, name):
    body, status = BAD_BODIES[name]
    r = httpx.post(gw.v1 + "/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] == "invalid_request_error"
    row = gw.ledger.rows[-1]
    assert row.status == "client_error" and row.http_status == status and row.cost_usd == 0


def test_deeply_nested_json_is_a_client_error_not_a_crash():
    from calibroute.errors import InputError
    from calibroute.gateway.requests import parse_json_object

    with pytest.raises(InputError, match="nested too deeply"):
        parse_json_object(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("name", ["malformed json", "missing messages", "unknown model"])
def test_route_endpoint_rejects_bad_input_the_same_way(gw, name):
    body, status = BAD_BODIES[name]
    r = httpx.post(gw.v1 + "/route", content=body)
    assert r.status_code == status and r.json()["error"]["type"] == "invalid_request_error"


def test_oversized_body_without_content_length_is_refused(gw):
    def chunks():
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    r = httpx.post(gw.v1 + "/chat/completions", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v1/chat/completions", 405), ("POST", "/v1/nothing", 404)])
def test_unknown_paths_and_methods_answer_in_openai_format(gw, method, path, status):
    r = httpx.request(method, gw.url + path)
    assert r.status_code == status and r.json()["error"]["message"]


def test_unknown_model_through_the_openai_client(gw):
    with openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-9", messages=MSG)
    assert info.value.body["code"] == "model_not_found"


# -- client API keys, with the real ledger (SQLite under tmp_path) ---------------------------
@pytest.fixture
def keyed(servers, tmp_path):
    fakes, urls = servers
    reset(fakes)
    ledger = open_ledger(tmp_path / "ledger.db", key_refresh_s=0.0)
    try:
        _, good = ledger.create_key("team-a", spend_limit_usd=100.0)
        _, broke = ledger.create_key("team-b", spend_limit_usd=0.0)
        with gateway_stack(fakes, urls, ledger=ledger) as stack:
            yield stack, good, broke
    finally:
        ledger.close()


def test_keys_enabled_requires_a_valid_key(keyed):
    stack, good, _ = keyed
    for key in ("", "crk-not-a-key"):
        r = httpx.post(stack.v1 + "/chat/completions", json={"model": "small", "messages": MSG},
                       headers={"authorization": f"Bearer {key}"} if key else {})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with openai.OpenAI(base_url=stack.v1, api_key=good, max_retries=0) as client:
        assert client.chat.completions.create(model="small", messages=MSG).choices[0].message.content == "Hello from small."
        assert client.models.list().data


def test_key_over_its_spend_limit_gets_429(keyed):
    stack, _, broke = keyed
    with openai.OpenAI(base_url=stack.v1, api_key=broke, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="small", messages=MSG)
    assert info.value.body["code"] == "spend_limit_exceeded"
    key = next(k for k in stack.ledger.list_keys() if k.name == "team-b")
    stack.ledger.close()
    import sqlite3

    rows = sqlite3.connect(str(stack.ledger.location)).execute("select status, http_status, api_key_id from requests").fetchall()
    assert rows == [("rejected", 429, key.id)]


def test_requests_are_recorded_with_their_key_and_cost(keyed):
    stack, good, _ = keyed
    with openai.OpenAI(base_url=stack.v1, api_key=good, max_retries=0) as client:
        client.chat.completions.create(model="small", messages=MSG)
    httpx.post(stack.v1 + "/chat/completions", json={"model": "small", "messages": MSG})  # 401: no row (docs/ledger.md)
    ledger = stack.ledger
    key = next(k for k in ledger.list_keys() if k.name == "team-a")
    assert key.spent_usd > 0
    ledger.close()  # flush the writer, then read what was stored
    import sqlite3

    rows = sqlite3.connect(str(ledger.location)).execute("select status, http_status, api_key_id from requests").fetchall()
    assert rows == [("ok", 200, key.id)]


def test_client_keys_are_reloaded_off_the_event_loop(servers, tmp_path):
    """The key ring is refreshed in a worker thread before a request would find it stale."""
    fakes, urls = servers
    reset(fakes)
    ledger = open_ledger(tmp_path / "ledger.db", key_refresh_s=0.2)
    on_loop: list[bool] = []
    reload = ledger.keys.reload

    def recording_reload() -> None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        reload()

    ledger.keys.reload = recording_reload  # type: ignore[method-assign]
    try:
        _, good = ledger.create_key("team-a")
        on_loop.clear()
        with gateway_stack(fakes, urls, ledger=ledger) as stack:
            time.sleep(0.5)  # three refresh periods, no request
            assert on_loop.count(False) >= 2 and True not in on_loop
            with openai.OpenAI(base_url=stack.v1, api_key=good, max_retries=0) as client:
                assert client.chat.completions.create(model="small", messages=MSG).choices[0].message.content
    finally:
        ledger.close()
