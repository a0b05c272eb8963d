"""OpenAICompatBackend against real local servers: requests, streaming, and error mapping."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fake_backend import FakeModel, dead_url, serve_models, stream_text, with_backend

from calibroute.backends import (
    BACKENDS,
    RateLimited,
    UpstreamRejected,
    backend_factory,
    build_backends,
)
from calibroute.backends.openai_compat import OpenAICompatBackend
from calibroute.config import ModelSpec, parse_portfolio
from calibroute.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)

MSG = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server():
    fake = FakeModel(name="m", reply="one two three")
    with serve_models(fake) as urls:
        yield fake, urls["m"]


@pytest.fixture
def fake(server):
    f, _ = server
    f.__dict__.update(FakeModel(name="m", reply="one two three").__dict__)
    return f


def spec(url: str, **backend: Any) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", "backend": {"base_url": url + "/v1", "served_model": "served-m", **backend},
                                     "input_usd_per_mtok": 1, "output_usd_per_mtok": 2})


def run(url: str, call, **backend: Any):  # type: ignore[no-untyped-def]
    return with_backend(spec(url, **backend), call)


def test_complete_sends_the_served_model_name(server, fake):
    data = run(server[1], lambda b: b.complete(dict(MSG)))
    assert data["choices"][0]["message"]["content"] == "one two three"
    assert fake.requests[-1]["model"] == "served-m" and fake.requests[-1]["stream"] is False


def test_stream_yields_events_with_their_raw_bytes(server, fake):
    async def first(b: OpenAICompatBackend):  # type: ignore[no-untyped-def]
        s = await b.open_stream(dict(MSG))
        events = [ev async for ev in s]
        await s.aclose()
        return events

    events = run(server[1], first)
    assert all(ev.raw is not None and ev.raw.startswith(b"{") for ev in events)
    assert run(server[1], stream_text) == "one two three"


def test_api_key_comes_from_the_named_environment_variable(server, fake, monkeypatch):
    seen: list[str] = []
    monkeypatch.setenv("FAKE_KEY", "sk-test")

    async def call(b: OpenAICompatBackend):  # type: ignore[no-untyped-def]
        seen.append(b.headers.get("authorization"))
        return await b.complete(dict(MSG))

    run(server[1], call, api_key_env="FAKE_KEY")
    assert seen == ["Bearer sk-test"]


@pytest.mark.parametrize(("status", "error", "retryable"), [
    (500, BackendUnavailable, True), (503, BackendUnavailable, True), (429, RateLimited, True),
    (400, UpstreamRejected, False), (404, UpstreamRejected, False), (401, BackendError, False),
])
@pytest.mark.parametrize("streamed", [False, True])
def test_error_statuses_map_to_the_error_tree(server, fake, status, error, retryable, streamed):
    fake.fail_times, fake.fail_status = 1, status
    with pytest.raises(error) as info:
        run(server[1], stream_text if streamed else (lambda b: b.complete(dict(MSG))))
    assert info.value.retryable is retryable and info.value.status == status
    assert f"fake failure {status}" in str(info.value)


def test_rejected_request_keeps_the_upstream_status_for_the_client(server, fake):
    fake.fail_times, fake.fail_status = 1, 422
    with pytest.raises(UpstreamRejected) as info:
        run(server[1], lambda b: b.complete(dict(MSG)))
    assert info.value.http_status == 422


def test_connection_refused_is_unavailable():
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        run(dead_url(), lambda b: b.complete(dict(MSG)))


def test_read_timeout_before_the_first_byte(server, fake):
    fake.delay_s = 1.0
    with pytest.raises(BackendTimeout):
        run(server[1], stream_text, read_timeout_s=0.2)


def test_total_timeout_bounds_a_slow_stream(server, fake):
    fake.reply, fake.chunk_delay_s = " ".join(["w"] * 50), 0.05
    with pytest.raises(BackendTimeout, match="total timeout"):
        run(server[1], stream_text, total_timeout_s=0.5)


def test_dropped_connection_mid_stream_raises_while_iterating(server, fake):
    fake.drop_after = 1
    with pytest.raises(BackendUnavailable, match="connection dropped"):
        run(server[1], stream_text)


def test_error_event_mid_stream_raises(server, fake):
    fake.error_event_after = 1
    with pytest.raises(BackendUnavailable, match="fake upstream failure mid-stream"):
        run(server[1], stream_text)


def test_registry_builds_one_backend_per_model_and_rejects_unknown_styles(server):
    text = ("models:\n" + "".join(f"  - {{name: {n}, backend: {{base_url: '{server[1]}/v1'}}, input_usd_per_mtok: 1, output_usd_per_mtok: 1}}\n"
                                  for n in ("a", "b"))
            + "routes:\n" + "".join(f"  {c}: {{models: [a], budget: {{max_output_tokens: 10}}}}\n"
                                    for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")))
    backends = build_backends(parse_portfolio(text))
    assert set(backends) == {"a", "b"} and backends["a"] is not backends["b"]

    async def close_all() -> None:
        for b in backends.values():
            await b.aclose()

    asyncio.run(close_all())
    assert "openai" in BACKENDS
    with pytest.raises(ConfigError, match="unknown backend api_style"):
        backend_factory("grpc")


def _sse(*events: str) -> bytes:
    return b"".join(b"data: " + e.encode() + b"\n\n" for e in events)


def _chunk(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


async def _with_one_write_server(body: bytes, call):  # type: ignore[no-untyped-def]
    """``call(backend)`` against a server that sends a whole SSE stream in one write (as a fast upstream does)."""
    response = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: " + str(len(body)).encode()
                + b"\r\n\r\n" + body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    b = OpenAICompatBackend(spec(f"http://127.0.0.1:{port}"))
    try:
        return await call(b)
    finally:
        await b.aclose()
        server.close()
        await server.wait_closed()


def test_events_received_together_are_ready_without_waiting_for_the_network():
    async def call(b: OpenAICompatBackend):  # type: ignore[no-untyped-def]
        s = await b.open_stream(dict(MSG))
        seen = []
        try:
            while s.ready():  # everything arrived in one write: no event needs a network wait
                ev = await s.next_event()
                if ev is None:
                    break
                seen.append(ev.data["choices"][0]["delta"]["content"])
        finally:
            await s.aclose()
        return seen, s.done

    seen, done = asyncio.run(_with_one_write_server(_sse(_chunk("a"), _chunk("b"), _chunk("c"), "[DONE]"), call))
    assert seen == ["a", "b", "c"] and done


def test_an_error_event_is_raised_only_after_the_events_before_it():
    error = '{"error": {"message": "boom", "code": 503}}'

    async def call(b: OpenAICompatBackend):  # type: ignore[no-untyped-def]
        s = await b.open_stream(dict(MSG))
        seen = []
        try:
            with pytest.raises(BackendUnavailable, match="boom"):
                async for ev in s:
                    seen.append(ev.data["choices"][0]["delta"]["content"])
        finally:
            await s.aclose()
        return seen

    assert asyncio.run(_with_one_write_server(_sse(_chunk("a"), _chunk("b"), error), call)) == ["a", "b"]


def test_proxy_from_the_environment_is_used(server, fake, monkeypatch):
    """HTTP_PROXY is honoured (the fake server doubles as the proxy: it answers the absolute-form request)."""
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server[1])
    data = run(dead_url(), lambda b: b.complete(dict(MSG)))
    assert data["choices"][0]["message"]["content"] == "one two three"
