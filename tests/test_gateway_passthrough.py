"""Native pass-through: backends that speak Anthropic Messages or OpenAI Responses themselves (``api_style``), reached
with the official clients, streamed and not: routed budgets in each API's own controls, the backend's own answer and
events, usage (cache reads included) in the ledger, and chat-completions requests translated to them."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from fake_backend import FakeModel, MemoryLedger
from fake_native import SIGNATURE, FakeAnthropic, FakeResponses
from servers import serve_in_thread
from stubs import KeywordClassifier, LengthDifficulty

from calibroute.config import parse_portfolio
from calibroute.errors import ConfigError
from calibroute.gateway import GatewaySettings, create_app
from calibroute.router import Router

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
FN_WEATHER = {"type": "function", "name": "get_weather", "parameters": WEATHER["input_schema"]}
PROVE = "prove that 6 * 7 = 42"  # REASONING: budget 8192 tokens, thinking 2048, effort high


def portfolio(anthropic_url: str, responses_url: str, openai_url: str) -> str:
    return f"""
models:
  - {{name: claude-native, backend: {{base_url: '{anthropic_url}/v1', api_style: anthropic, served_model: claude-x,
      api_key_env: FAKE_ANTHROPIC_KEY}}, input_usd_per_mtok: 3, output_usd_per_mtok: 15, cached_input_usd_per_mtok: 0.3,
      reasoning: budget_tokens}}
  - {{name: gpt-native, backend: {{base_url: '{responses_url}/v1', api_style: responses, served_model: gpt-x}},
      input_usd_per_mtok: 1.25, output_usd_per_mtok: 10, cached_input_usd_per_mtok: 0.125, reasoning: reasoning_effort}}
  - {{name: small, backend: {{base_url: '{openai_url}/v1', served_model: small-x}}, input_usd_per_mtok: 0.1,
      output_usd_per_mtok: 0.2}}
routes:
  SIMPLE: {{models: [small], budget: {{max_output_tokens: 256}}}}
  REASONING: {{models: [claude-native, small], budget: {{max_output_tokens: 8192, thinking: true,
      thinking_budget_tokens: 2048, effort: high}}}}
  OPEN_ENDED: {{models: [gpt-native, small], budget: {{max_output_tokens: 1024, thinking: true, effort: low}}}}
  GENERAL: {{models: [gpt-native, small], budget: {{max_output_tokens: 2048, thinking: true, effort: medium}}}}
aliases: {{auto: auto, calibroute-reasoning: REASONING, calibroute-general: GENERAL}}
routing: {{min_confidence: 0.55, escalation: {{threshold: 0.0}}}}
"""


@dataclass
class Native:
    url: str
    claude: FakeAnthropic
    gpt: FakeResponses
    small: FakeModel
    ledger: MemoryLedger
    app: Any

    def cost(self, model: str, row: Any) -> float:
        return self.app.gateway.portfolio.model(model).cost_usd(row.prompt_tokens, row.completion_tokens, row.cached_tokens)


@pytest.fixture(scope="module")
def upstreams():
    claude, gpt, small = FakeAnthropic(), FakeResponses(), FakeModel(name="small", reply="Hello from small.")
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(fake.app())) for fake in (claude, gpt, small)]
        yield (claude, gpt, small), urls


@pytest.fixture
def native(upstreams, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    (claude, gpt, small), urls = upstreams
    for fake, fresh in ((claude, FakeAnthropic()), (gpt, FakeResponses()), (small, FakeModel(name="small", reply="Hello from small."))):
        fake.__dict__.update(fresh.__dict__)
    router = Router(parse_portfolio(portfolio(*urls)), classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    ledger = MemoryLedger()
    app = create_app(GatewaySettings(retries=0, ledger_batch_s=0.0), router=router, ledger=ledger)
    with serve_in_thread(app) as url:
        yield Native(url, claude, gpt, small, ledger, app)


@pytest.fixture
def claude_client(native):
    with anthropic.Anthropic(base_url=native.url, api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture
def oai(native):
    with openai.OpenAI(base_url=native.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_messages_pass_through_with_the_routed_budget_in_anthropics_controls(native, claude_client):
    native.claude.thinking, native.claude.cached_tokens = "Six sevens.", 5
    system = [{"type": "text", "text": "You are exact.", "cache_control": {"type": "ephemeral"}}]
    raw = claude_client.messages.with_raw_response.create(
        model="claude-native", max_tokens=4000, system=system, thinking={"type": "enabled", "budget_tokens": 3000},
        messages=[{"role": "user", "content": PROVE}], extra_body={"top_k": 5})
    msg = raw.parse()
    sent = native.claude.requests[-1]
    assert sent["headers"]["x-api-key"] == "sk-ant-test" and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["model"] == "claude-x" and sent["system"] == system and sent["top_k"] == 5  # the client's own body
    assert sent["max_tokens"] == 4000 and sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # routed, capped
    assert [b.type for b in msg.content] == ["thinking", "text"] and msg.content[0].signature == SIGNATURE  # not re-signed
    assert msg.usage.cache_read_input_tokens == 5
    row = native.ledger.rows[-1]
    assert raw.headers["x-calibroute-model"] == row.model == "claude-native" and row.status == "ok"
    assert row.prompt_tokens == msg.usage.input_tokens + 5 and row.cached_tokens == 5
    assert row.completion_tokens == msg.usage.output_tokens and row.cost_usd == pytest.approx(native.cost("claude-native", row))


def test_messages_stream_is_relayed_event_by_event_and_billed(native, claude_client):
    native.claude.cached_tokens = 3
    with claude_client.messages.stream(model="claude-native", max_tokens=500, messages=[{"role": "user", "content": "hi"}]) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert final.content[0].text == "Hello from the native backend." and final.model == "claude-x"
    row = native.ledger.rows[-1]
    assert row.stream and row.cached_tokens == 3 and row.prompt_tokens == final.usage.input_tokens + 3
    assert row.completion_tokens == final.usage.output_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_round_trip_natively(native, claude_client, stream):
    native.claude.tool_call = ("get_weather", {"city": "Paris"})
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]

    def ask() -> Any:
        if not stream:
            return claude_client.messages.create(model="claude-native", max_tokens=300, tools=[WEATHER], messages=history)
        with claude_client.messages.stream(model="claude-native", max_tokens=300, tools=[WEATHER], messages=history) as s:
            return s.get_final_message()

    first = ask()
    call = first.content[-1]
    assert first.stop_reason == "tool_use" and call.input == {"city": "Paris"}
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}]}]
    assert ask().content[0].text == "The tool said: 18C"
    assert native.claude.requests[-1]["tools"] == [WEATHER]  # Anthropic's own tool shape, untranslated


def test_gateway_signed_thinking_is_not_passed_to_anthropic(native, claude_client):
    """A conversation that began on a translated backend carries the gateway's signatures, which Anthropic would reject."""
    signer = native.app.gateway.dialects["/v1/messages"].signer
    ours = {"type": "thinking", "thinking": "mine", "signature": signer.sign("mine")}
    theirs = {"type": "thinking", "thinking": "theirs", "signature": SIGNATURE}
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [ours, theirs, {"type": "text", "text": "ok"}]},
               {"role": "user", "content": "and?"}]
    claude_client.messages.create(model="claude-native", max_tokens=100, messages=history)
    assert native.claude.requests[-1]["messages"][1]["content"] == [theirs, {"type": "text", "text": "ok"}]


@pytest.mark.parametrize("stream", [False, True])
def test_responses_pass_through_with_the_routed_effort_and_usage(native, oai, stream):
    native.gpt.thinking, native.gpt.cached_tokens = "Think.", 2
    request = {"model": "gpt-native", "input": PROVE, "reasoning": {"effort": "medium", "summary": "auto"},
               "max_output_tokens": 5000, "metadata": {"run": "7"}}
    if stream:
        with oai.responses.stream(**request) as s:
            kinds = [e.type for e in s]
            resp = s.get_final_response()
        assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    else:
        resp = oai.responses.create(**request)
    sent = native.gpt.requests[-1]
    assert sent["model"] == "gpt-x" and sent["metadata"] == {"run": "7"}
    assert sent["max_output_tokens"] == 5000 and sent["reasoning"] == {"effort": "medium", "summary": "auto"}  # capped
    assert resp.id == f"resp_fake{len(native.gpt.requests)}" and resp.output_text == "Hello from the native backend."
    assert resp.output[0].type == "reasoning"
    row = native.ledger.rows[-1]
    assert (row.model, row.stream, row.prompt_tokens, row.cached_tokens) == ("gpt-native", stream, resp.usage.input_tokens, 2)
    assert row.completion_tokens == resp.usage.output_tokens and row.reasoning_tokens == 1
    assert row.cost_usd == pytest.approx(native.cost("gpt-native", row))


def test_responses_previous_response_id_continues_a_native_response(native, oai):
    native.gpt.tool_call = ("get_weather", {"city": "Paris"})
    first = oai.responses.create(model="gpt-native", input="Weather in Paris?", tools=[FN_WEATHER], instructions="Be brief.")
    (call,) = [item for item in first.output if item.type == "function_call"]
    second = oai.responses.create(model="gpt-native", previous_response_id=first.id, tools=[FN_WEATHER],
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    assert second.output_text == "The tool said: 18C"
    sent = native.gpt.requests[-1]
    assert "previous_response_id" not in sent and "instructions" not in sent  # instructions are per request
    assert [item.get("type", "message") for item in sent["input"]] == ["message", "message", "function_call", "function_call_output"]


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_are_translated_to_an_anthropic_backend(native, oai, stream):
    native.claude.tool_call, native.claude.cached_tokens = ("get_weather", {"city": "Paris"}), 4
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": WEATHER["input_schema"]}}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]

    def ask() -> tuple[Any, Any]:
        if not stream:
            answer = oai.chat.completions.create(model="claude-native", messages=messages, tools=tools, user="u-1")
            return answer.choices[0].message, answer.usage
        chunks = list(oai.chat.completions.create(model="claude-native", messages=messages, tools=tools, user="u-1",
                                                  stream=True, stream_options={"include_usage": True}))
        calls: dict[int, dict[str, str]] = {}
        for chunk in chunks[:-1]:
            for tc in chunk.choices[0].delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += tc.id or ""
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
        text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
        tool_calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                      for c in calls.values()]
        return {"content": text, "tool_calls": tool_calls}, chunks[-1].usage

    message, usage = ask()
    calls = message.tool_calls if not stream else message["tool_calls"]
    call = calls[0] if stream else calls[0].model_dump()
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    sent = native.claude.requests[-1]
    assert sent["system"] == "Be brief." and sent["metadata"] == {"user_id": "u-1"}
    assert sent["tools"] == [WEATHER] and sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}]
    assert usage.prompt_tokens_details.cached_tokens == 4 and native.ledger.rows[-1].cached_tokens == 4
    messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]
    second, _ = ask()
    assert (second.content if not stream else second["content"]) == "The tool said: 18C"
    turns = native.claude.requests[-1]["messages"]
    assert turns[-2]["content"][-1] == {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {"city": "Paris"}}
    assert turns[-1] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18C"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_are_translated_to_a_responses_backend(native, oai, stream):
    native.gpt.thinking = "Hmm."
    request = {"model": "gpt-native", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROVE}],
               "max_tokens": 600}
    if stream:
        chunks = list(oai.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
        text, usage = "".join(c.choices[0].delta.content or "" for c in chunks[:-1]), chunks[-1].usage
    else:
        answer = oai.chat.completions.create(**request)
        text, usage = answer.choices[0].message.content, answer.usage
    assert text == "Hello from the native backend." and usage.completion_tokens_details.reasoning_tokens == 1
    sent = native.gpt.requests[-1]
    assert sent["instructions"] == "Be brief." and sent["store"] is False
    assert sent["max_output_tokens"] == 600 and sent["reasoning"] == {"effort": "high"}
    assert native.ledger.rows[-1].prompt_tokens == usage.prompt_tokens


def test_messages_fall_back_from_a_failing_native_backend_to_a_translated_one(native, claude_client):
    native.claude.fail_status = 503
    raw = claude_client.messages.with_raw_response.create(model="calibroute-reasoning", max_tokens=4000,
                                                          messages=[{"role": "user", "content": PROVE}])
    assert raw.headers["x-calibroute-fallbacks"] == "claude-native,small"
    assert raw.parse().content[0].text == "Hello from small." and native.small.requests[-1]["model"] == "small-x"


def test_config_check_rejects_controls_a_native_api_cannot_carry():
    text = portfolio("http://a", "http://b", "http://c").replace("reasoning: reasoning_effort}", "reasoning: think_tags}")
    with pytest.raises(ConfigError, match=r"models\.1\.reasoning: reasoning 'think_tags' needs a chat-completions backend"):
        parse_portfolio(text, "p.yaml")
