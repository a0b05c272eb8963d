"""POST /v1/messages with the official anthropic client: whole and streamed, tools, thinking, errors."""

from __future__ import annotations

import anthropic
import pytest

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def claude(gw):
    with anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0) as c:
        yield c


def test_message_is_routed_and_answered_in_anthropic_shape(gw, claude):
    msg = claude.messages.create(model="small", max_tokens=100, messages=HI)
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "small"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "Hello from small."
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens == 1 and msg.usage.output_tokens == 3
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    row = gw.ledger.rows[-1]
    assert row.status == "ok" and row.model == "small" and row.prompt_tokens == 1 and row.completion_tokens == 3


def test_request_fields_are_translated_for_the_backend(gw, claude):
    claude.messages.create(model="small", max_tokens=100, system=[{"type": "text", "text": "Be brief."}],
                           stop_sequences=["\n\nHuman:"], metadata={"user_id": "u-1"}, extra_body={"temperature": 0.2, "top_k": 5},
                           messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    sent = gw.fakes["small"].requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["stop"] == ["\n\nHuman:"] and sent["user"] == "u-1" and sent["temperature"] == 0.2 and sent["top_k"] == 5
    assert sent["max_tokens"] == 100  # the client's max_tokens caps the routed 2048


def test_cached_prompt_tokens_are_reported_as_cache_reads(gw, claude):
    gw.fakes["small"].cached_tokens = 1
    msg = claude.messages.create(model="small", max_tokens=100, messages=[{"role": "user", "content": "hello there friend"}])
    assert msg.usage.cache_read_input_tokens == 1 and msg.usage.input_tokens == 2


def test_stream_sends_anthropic_events_in_order(gw, claude):
    events = list(claude.messages.create(model="small", max_tokens=100, messages=HI, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]  # the client drops pings
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello from small."
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 3 and delta.usage.input_tokens == 1
    assert gw.ledger.rows[-1].stream and gw.ledger.rows[-1].completion_tokens == 3


def test_stream_helper_assembles_the_final_message(claude):
    with claude.messages.stream(model="mid", max_tokens=100, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from mid." and final.content[0].text == text and final.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(gw, claude, stream):
    gw.fakes["mid"].tool_call = ("get_weather", '{"city": "Paris"}')
    history = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        if not stream:
            return claude.messages.create(model="mid", max_tokens=200, tools=[WEATHER], messages=history)
        with claude.messages.stream(model="mid", max_tokens=200, tools=[WEATHER], messages=history) as s:
            return s.get_final_message()

    first = ask()
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    sent = gw.fakes["mid"].requests[-1]
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                               "parameters": WEATHER["input_schema"]}}]
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}]
    second = ask()
    assert second.stop_reason == "end_turn" and second.content[0].text == "The tool said: 18C and sunny"
    sent = gw.fakes["mid"].requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_comes_back_as_a_thinking_block(gw, claude, stream):
    gw.fakes["mid"].reasoning = "Let me see."
    if stream:
        with claude.messages.stream(model="mid", max_tokens=100, messages=HI) as s:
            msg = s.get_final_message()
    else:
        msg = claude.messages.create(model="mid", max_tokens=100, messages=HI)
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Let me see." and msg.content[1].text == "Hello from mid."
    signer = gw.app.gateway.dialects["/v1/messages"].signer
    assert signer.verify("Let me see.", msg.content[0].signature)  # streamed: the signature_delta, assembled by the SDK
    assert not signer.verify("Let me see!", msg.content[0].signature)


def test_signed_thinking_sent_back_is_accepted_and_never_forwarded(gw, claude):
    """A tool-use continuation carries the thinking block back, as clients must; the backend never sees it."""
    gw.fakes["mid"].reasoning = "I need the weather."
    gw.fakes["mid"].tool_call = ("get_weather", '{"city": "Paris"}')
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = claude.messages.create(model="mid", max_tokens=200, tools=[WEATHER], messages=history)
    thinking, call = first.content[0], first.content[-1]
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}]}]
    forged = {"type": "thinking", "thinking": "something else", "signature": thinking.signature}
    for sent_back in (history, [*history[:1], {"role": "assistant", "content": [forged, history[1]["content"][-1]]},
                                history[2]]):
        answer = claude.messages.create(model="mid", max_tokens=200, tools=[WEATHER], messages=sent_back)
        assert answer.content[-1].text == "The tool said: 18C"
        assert "I need the weather" not in str(gw.fakes["mid"].requests[-1]["messages"])


def test_client_thinking_settings_only_lower_the_routed_budget(gw, claude):
    raw = claude.messages.with_raw_response.create(model="mid", max_tokens=4000, messages=HI,
                                                   thinking={"type": "disabled"})
    assert "thinking off" in raw.headers["x-calibroute-budget"]
    assert gw.fakes["mid"].requests[-1]["chat_template_kwargs"]["enable_thinking"] is False
    # the REASONING route thinks 20 tokens (1024 on claude, the API minimum): a larger client budget does not raise it
    claude.messages.create(model="claude", max_tokens=4000, messages=[{"role": "user", "content": "prove that 6 * 7 = 42"}],
                           thinking={"type": "enabled", "budget_tokens": 3000})
    assert gw.fakes["claude"].requests[-1]["thinking"]["budget_tokens"] == 1024


def test_errors_use_anthropic_format_and_status(gw, claude):
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="small", max_tokens=0, messages=HI)
    assert bad.value.status_code == 400
    assert bad.value.body == {"type": "error", "error": {"type": "invalid_request_error", "message": bad.value.body["error"]["message"]}}
    assert "max_tokens" in bad.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="claude-no-such-model", max_tokens=10, messages=HI)
    assert missing.value.body["error"]["type"] == "not_found_error"
    gw.fakes["small"].fail_times = 10
    gw.fakes["mid"].fail_times = 10
    with pytest.raises(anthropic.APIStatusError) as failed:
        claude.messages.create(model="small", max_tokens=10, messages=HI)
    assert failed.value.status_code >= 500 and failed.value.body["error"]["type"] in ("api_error", "overloaded_error")
    assert gw.ledger.rows[-1].status == "error"


def test_stream_failing_midway_ends_with_an_error_event(gw, claude):
    gw.fakes["small"].error_event_after = 1
    with pytest.raises(anthropic.APIStatusError):
        for _ in claude.messages.create(model="small", max_tokens=10, messages=HI, stream=True):
            pass


def test_client_keys_are_checked_from_x_api_key(servers, tmp_path):
    from fake_backend import gateway_stack, reset

    from calibroute.ledger import open_ledger

    fakes, urls = servers
    reset(fakes)
    with open_ledger(f"sqlite:///{tmp_path / 'keys.db'}") as ledger:
        _, token = ledger.create_key("agent")
        with gateway_stack(fakes, urls, ledger=ledger) as gw:
            with anthropic.Anthropic(base_url=gw.url, api_key=token, max_retries=0) as good:
                assert good.messages.create(model="small", max_tokens=10, messages=HI).content[0].text == "Hello from small."
            with anthropic.Anthropic(base_url=gw.url, api_key="crk-wrong", max_retries=0) as bad:
                with pytest.raises(anthropic.AuthenticationError) as exc:
                    bad.messages.create(model="small", max_tokens=10, messages=HI)
            assert exc.value.body["error"]["type"] == "authentication_error"


def test_count_tokens_answers_with_the_gateways_estimate(claude):
    counted = claude.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "x" * 400}])
    assert counted.input_tokens == 100
    with_tools = claude.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "x" * 400}], tools=[WEATHER])
    assert with_tools.input_tokens > 100
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.count_tokens(model="auto", messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
