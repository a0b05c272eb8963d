"""/v1/messages against Anthropic's public API reference (docs.claude.com/en/api/messages,
/en/api/messages-streaming, /en/api/errors): every request field of the reference (as the
official client declares them) is accepted or refused in Anthropic's error format; a raw
stream has the documented event names and order; usage is present."""

from __future__ import annotations

import json

import httpx
import pytest
from anthropic.types import message_create_params

from calibroute.config import Budget
from calibroute.policy import cap_budget

HI = [{"role": "user", "content": "hi"}]
# A valid value for every request field; fields the gateway cannot honour must be refused (400), never ignored silently.
FIELD_VALUES = {
    "cache_control": {"type": "ephemeral"}, "container": "container_123", "diagnostics": {"previous_message_id": "msg_1"},
    "inference_geo": "us", "metadata": {"user_id": "u"}, "output_config": {"effort": "low"},
    "service_tier": "auto", "speed": "fast", "stop_sequences": ["END"], "system": "Be brief.",
    "thinking": {"type": "enabled", "budget_tokens": 1024}, "tool_choice": {"type": "auto"},
    "tools": [{"name": "t", "input_schema": {"type": "object"}}], "user_profile_id": "up_1", "workspace_id": "wrkspc_1",
    "stream": False, "temperature": 0.5, "top_p": 0.9, "top_k": 10, "mcp_servers": [{"type": "url", "url": "http://x", "name": "m"}],
}
REFUSED = {"container", "mcp_servers"}
REQUIRED = {"model", "messages", "max_tokens"}


def declared_fields() -> set[str]:
    return {k for cls in message_create_params.MessageCreateParamsNonStreaming.__mro__
            for k in getattr(cls, "__annotations__", {})}


def post(gw, body: dict, **kw) -> httpx.Response:
    return httpx.post(gw.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}, timeout=10, **kw)


def assert_anthropic_error(resp: httpx.Response, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == kind and isinstance(body["error"]["message"], str)


def test_every_declared_request_field_is_accepted_or_refused_in_anthropic_format(gw):
    fields = declared_fields() - REQUIRED
    missing = fields - FIELD_VALUES.keys()
    assert not missing, f"new request fields in the reference, decide how to treat them: {missing}"
    for name in sorted(FIELD_VALUES):
        resp = post(gw, {"model": "small", "max_tokens": 2000, "messages": HI, name: FIELD_VALUES[name]})
        if name in REFUSED:
            assert_anthropic_error(resp, 400, "invalid_request_error")
            assert name in resp.json()["error"]["message"]
        else:
            assert resp.status_code == 200, (name, resp.text)
            assert resp.json()["type"] == "message"


@pytest.mark.parametrize("body, status, kind", [
    ({"messages": HI, "max_tokens": 10}, 400, "invalid_request_error"),  # model missing
    ({"model": "small", "messages": HI}, 400, "invalid_request_error"),  # max_tokens missing
    ({"model": "small", "max_tokens": 10, "messages": []}, 400, "invalid_request_error"),
    ({"model": "small", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error"),
    ({"model": "small", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "document"}]}]}, 400,
     "invalid_request_error"),
    ({"model": "small", "max_tokens": 10, "messages": HI, "thinking": {"type": "enabled", "budget_tokens": 10}}, 400,
     "invalid_request_error"),
    ({"model": "small", "max_tokens": 10, "messages": HI, "tools": [{"type": "web_search_20250305", "name": "w"}]}, 400,
     "invalid_request_error"),
    ({"model": "no-such-model", "max_tokens": 10, "messages": HI}, 404, "not_found_error"),
])
def test_invalid_requests_get_anthropic_errors(gw, body, status, kind):
    assert_anthropic_error(post(gw, body), status, kind)


def test_malformed_json(gw):
    resp = httpx.post(gw.url + "/v1/messages", content=b"{not json", timeout=10)
    assert_anthropic_error(resp, 400, "invalid_request_error")


def test_raw_stream_has_the_documented_events_in_order(gw):
    gw.fakes["mid"].reasoning = "Hmm."
    gw.fakes["mid"].tool_call = ("t", '{"a": 1}')
    body = {"model": "mid", "max_tokens": 2000, "messages": HI, "stream": True,
            "tools": [{"name": "t", "input_schema": {"type": "object"}}]}
    with httpx.stream("POST", gw.url + "/v1/messages", json=body, timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = [block.split("\n") for block in raw.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    payloads = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(p["type"] == n for n, p in zip(names, payloads))  # the SSE event name matches the data's type
    assert names == ["message_start", "ping",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",  # thinking
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",  # tool_use
                     "message_delta", "message_stop"]
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and set(start["usage"]) >= {"input_tokens", "output_tokens"}
    assert payloads[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert payloads[3]["delta"] == {"type": "thinking_delta", "thinking": "Hmm."}
    assert payloads[4]["delta"]["type"] == "signature_delta" and payloads[4]["delta"]["signature"]  # last, as Anthropic's
    assert payloads[6]["content_block"]["type"] == "tool_use" and payloads[6]["index"] == 1
    assert "".join(p["delta"]["partial_json"] for p in payloads[7:9]) == '{"a": 1}'
    usage = payloads[10]["usage"]
    assert payloads[10]["delta"]["stop_reason"] == "tool_use"
    assert set(usage) == {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}


def test_client_thinking_cap_lowers_never_raises():
    routed = Budget(max_output_tokens=4096, thinking=True, thinking_budget_tokens=2000)
    assert cap_budget(routed, None, None, 1500).thinking_budget_tokens == 1500
    assert cap_budget(routed, None, None, 5000) == routed
    off = cap_budget(routed, None, None, 0)
    assert off.thinking is False and off.thinking_budget_tokens is None
    assert cap_budget(Budget(max_output_tokens=256), None, None, 5000) == Budget(max_output_tokens=256)
