"""Streaming through the gateway: chunk relay, usage, think-budget forcing, failures mid-stream."""

from __future__ import annotations

import asyncio

import openai
import pytest
from fake_backend import ANSWER

USER = [{"role": "user", "content": "prove that 6 * 7 = 42"}]  # the stub classifier says REASONING -> thinker


def collect(stream) -> tuple[str, list]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_stream_relays_every_chunk_and_headers_say_what_was_done(gw, client):
    raw = client.chat.completions.with_raw_response.create(model="small", stream=True, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-calibroute-model"] == "small"
    assert raw.headers["content-type"].startswith("text/event-stream")
    text, chunks = collect(raw.parse())
    assert text == "Hello from small."
    assert len(chunks) == 5  # role, 3 content deltas, finish: one client chunk per upstream chunk
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert gw.fakes["small"].requests[-1]["stream_options"] == {"include_usage": True}


def test_usage_chunk_only_when_the_client_asks(gw, client):
    _, chunks = collect(client.chat.completions.create(model="small", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert all(c.usage is None for c in chunks)
    _, chunks = collect(client.chat.completions.create(model="small", stream=True, stream_options={"include_usage": True},
                                                       messages=[{"role": "user", "content": "hi"}]))
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.prompt_tokens == 1 and usage.completion_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_thinking_is_cut_at_the_budget_then_the_model_answers(gw, client):
    gw.fakes["thinker"].think_words = 60  # the route's thinking budget is 20
    text, chunks = collect(client.chat.completions.create(model="auto", stream=True, messages=USER,
                                                          stream_options={"include_usage": True}))
    thinking, _, answer = text.partition("</think>")
    assert thinking.startswith("<think>") and thinking.count("hm") == 20
    assert answer.startswith("\n\nFinal Answer: ") and answer.rstrip().endswith(ANSWER)
    usage = chunks[-1].usage
    assert usage.completion_tokens_details.reasoning_tokens == 20
    first, second = gw.fakes["thinker"].requests
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    prefill = second["messages"][-1]
    assert prefill["role"] == "assistant" and prefill["content"].endswith("</think>\n\nFinal Answer: ")
    assert second["max_tokens"] < first["max_tokens"]
    row = gw.ledger.rows[-1]
    assert row.reasoning_tokens == 20 and row.completion_tokens == usage.completion_tokens and row.stream


def test_thinking_within_budget_is_untouched(gw, client):
    gw.fakes["thinker"].think_words = 10
    text, _ = collect(client.chat.completions.create(model="auto", stream=True, messages=USER))
    assert text == "<think>" + "hm " * 10 + "</think>\n\n" + ANSWER
    assert len(gw.fakes["thinker"].requests) == 1


def test_non_streamed_request_to_a_think_tags_model_is_forced_too(gw, client):
    gw.fakes["thinker"].think_words = 60
    reply = client.chat.completions.create(model="auto", messages=USER)
    content = reply.choices[0].message.content
    assert content.count("hm") == 20 and "</think>\n\nFinal Answer: " in content
    assert reply.usage.completion_tokens_details.reasoning_tokens == 20


def test_async_client_streams(gw):
    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as c:
            stream = await c.chat.completions.create(model="mid", stream=True, messages=[{"role": "user", "content": "hi"}])
            return "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])

    assert asyncio.run(run()) == "Hello from mid."


def test_connection_dropped_mid_stream_ends_with_an_error_event(gw, client):
    gw.fakes["small"].drop_after = 2
    stream = client.chat.completions.create(model="small", stream=True, messages=[{"role": "user", "content": "hi"}])
    got = []
    with pytest.raises(openai.APIError, match="connection dropped"):
        for chunk in stream:
            got.append(chunk)
    assert got  # the client had its first chunks before the failure
    row = gw.ledger.rows[-1]
    assert row.status == "error" and row.http_status == 200 and "after streaming began" in row.error


def test_upstream_error_event_mid_stream_is_relayed_as_an_error_event(gw, client):
    gw.fakes["small"].error_event_after = 1
    with pytest.raises(openai.APIError, match="fake upstream failure mid-stream"):
        collect(client.chat.completions.create(model="small", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert len(gw.fakes["small"].requests) == 1  # no retry once the stream began


def test_failure_before_the_first_byte_falls_back_invisibly(gw, client):
    gw.fakes["small"].fail_times, gw.fakes["small"].fail_status = 10, 503
    raw = client.chat.completions.with_raw_response.create(model="auto", stream=True,
                                                           messages=[{"role": "user", "content": "summarize this"}])
    assert raw.headers["x-calibroute-model"] == "mid"
    assert raw.headers["x-calibroute-fallbacks"] == "small,mid"
    text, _ = collect(raw.parse())
    assert text == "Hello from mid."


def test_client_disconnect_mid_stream_is_recorded_and_the_upstream_closed(gw):
    import time

    import httpx

    gw.fakes["small"].reply = " ".join(["word"] * 200)
    gw.fakes["small"].chunk_delay_s = 0.02
    body = {"model": "small", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gw.v1 + "/chat/completions", json=body) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 10
    while not gw.ledger.rows and time.monotonic() < deadline:
        time.sleep(0.02)
    row = gw.ledger.rows[-1]
    assert (row.status, row.http_status, row.error) == ("error", 499, "client disconnected")


def test_non_streamed_tool_call_from_a_think_tags_model_is_kept(gw, client):
    """Forcing reads a think-tags model's stream even for a whole answer; the tool call must survive assembly."""
    gw.fakes["thinker"].tool_call = ("get_weather", '{"city": "Paris"}')
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    reply = client.chat.completions.create(model="thinker", messages=USER, tools=[tool])
    assert gw.fakes["thinker"].requests[-1]["stream"] is True  # the forcing path
    (call,) = reply.choices[0].message.tool_calls
    assert call.id == "call_fake1" and call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
    assert reply.choices[0].finish_reason == "tool_calls"
