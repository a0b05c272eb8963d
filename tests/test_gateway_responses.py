"""POST /v1/responses with the official openai client: whole and streamed, function calls, stored turns, errors."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.responses import response_create_params

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_string_input_is_routed_and_answered_as_a_response(gw, client):
    resp = client.responses.create(model="small", input="hi", instructions="Be brief.", max_output_tokens=100)
    assert resp.object == "response" and resp.status == "completed" and resp.model == "small"
    assert resp.output_text == "Hello from small."
    assert [item.type for item in resp.output] == ["message"] and resp.output[0].content[0].type == "output_text"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens == 3 and resp.usage.output_tokens_details.reasoning_tokens == 0
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 100
    sent = gw.fakes["small"].requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 100
    assert gw.ledger.rows[-1].status == "ok" and gw.ledger.rows[-1].model == "small"


def test_input_items_and_reasoning_effort_are_translated(gw, client):
    client.responses.create(model="effort", reasoning={"effort": "low"}, input=[
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]}])
    sent = gw.fakes["effort"].requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "hello"}]
    assert sent["reasoning_effort"] == "low"  # the client's effort lowers the routed one


def test_stream_sends_responses_events_in_order(gw, client):
    events = list(client.responses.create(model="small", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                     "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == "Hello from small." and final.usage.output_tokens == 3 and final.status == "completed"
    assert gw.ledger.rows[-1].stream


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip_with_stored_previous_response(gw, client, stream):
    gw.fakes["mid"].tool_call = ("get_weather", '{"city": "Paris"}')

    def ask(**kw):
        if not stream:
            return client.responses.create(model="mid", tools=[WEATHER], **kw)
        with client.responses.stream(model="mid", tools=[WEATHER], **kw) as s:
            return s.get_final_response()

    first = ask(input="What is the weather in Paris?")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city": "Paris"}'
    second = ask(previous_response_id=first.id,
                 input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}])
    assert second.output_text == "The tool said: 18C and sunny" and second.previous_response_id == first.id
    sent = gw.fakes["mid"].requests[-1]["messages"]
    assert sent[0] == {"role": "user", "content": "What is the weather in Paris?"}
    assert sent[1]["tool_calls"][0]["id"] == call.call_id and sent[2]["role"] == "tool"


def test_function_call_round_trip_with_the_whole_conversation(gw, client):
    gw.fakes["mid"].tool_call = ("get_weather", '{"city": "Paris"}')
    first = client.responses.create(model="mid", tools=[WEATHER], input="Weather in Paris?", store=False)
    call = first.output[0]
    second = client.responses.create(model="mid", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}])
    assert second.output_text == "The tool said: rain"
    with pytest.raises(openai.BadRequestError) as exc:  # store=False: nothing to continue from
        client.responses.create(model="mid", previous_response_id=first.id, input="and tomorrow?")
    assert "previous_response_id" in exc.value.message


def test_reasoning_comes_back_as_a_reasoning_item(gw, client):
    gw.fakes["mid"].reasoning = "Let me see."
    resp = client.responses.create(model="mid", input="hi")
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    assert resp.output[0].content[0].text == "Let me see."
    with client.responses.stream(model="mid", input="hi") as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert "response.reasoning_text.delta" in kinds and final.output[0].content[0].text == "Let me see."


def test_errors_are_openai_format(gw, client):
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="small", input="hi", previous_response_id="resp_unknown")
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model="small", input="hi", tools=[{"type": "web_search"}])
    assert "web_search" in tool.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    gw.fakes["small"].error_event_after = 1
    events = list(client.responses.create(model="small", input="hi", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]


# A valid value for the request fields the gateway reads; the others (Responses-service features) are sent as null.
VALUES = {"instructions": "Be brief.", "max_output_tokens": 50, "metadata": {"k": "v"}, "parallel_tool_calls": False,
          "reasoning": {"effort": "high"}, "store": False, "stream": False, "temperature": 0.3, "top_p": 0.9,
          "tool_choice": "auto", "tools": [WEATHER], "user": "u", "safety_identifier": "s", "prompt_cache_key": "k",
          "text": {"format": {"type": "json_object"}}, "truncation": "auto", "include": [], "service_tier": "auto"}


def test_every_declared_request_field_is_accepted_or_refused_with_openai_errors(gw):
    declared = {k for cls in response_create_params.ResponseCreateParamsNonStreaming.__mro__
                for k in getattr(cls, "__annotations__", {})} - {"model", "input"}
    refused = {"conversation": "conv_1", "prompt": {"id": "pmpt_1"}, "context_management": [{"type": "compaction"}],
               "background": True}
    for name in sorted(declared):
        body = {"model": "small", "input": "hi", name: refused.get(name, VALUES.get(name))}
        resp = httpx.post(gw.v1 + "/responses", json=body, timeout=10)
        if name in refused:
            assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error", (name, resp.text)
        else:
            assert resp.status_code == 200, (name, resp.text)
