"""Fuzzed requests against a real gateway with healthy backends: no client input may cause a 5xx.

Generated: chat-shaped bodies with wrong types and odd text (lone surrogates included, sent
as JSON escapes), arbitrary JSON, deep nesting around the parser's limit, raw bytes. Each
test runs ``CALIBROUTE_FUZZ_EXAMPLES`` examples (default 100, so the suite stays quick;
the reliability benchmark's command raises it, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from fake_backend import gateway_stack, reset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CALIBROUTE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text with an unpaired surrogate half the time: json.dumps sends it as a "\\udXXX" escape.
LONE_SURROGATE = st.characters(categories=["Cs"])
TEXT = st.text(max_size=30) | st.builds(lambda a, s, b: a + s + b, st.text(max_size=20), LONE_SURROGATE, st.text(max_size=20))
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=20)


def mostly(valid: st.SearchStrategy, other: st.SearchStrategy = JSON) -> st.SearchStrategy:
    """Usually a valid value (so the request gets past validation, to routing and the backend), sometimes anything."""
    return st.one_of(valid, valid, valid, other)


MODELS = mostly(st.sampled_from(["auto", "small", "mid", "thinker", "calibroute-reasoning", "calibroute-simple", "nope"]))
CONTENT = mostly(TEXT | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=3))
MESSAGE = mostly(st.fixed_dictionaries({"role": mostly(st.sampled_from(["user", "system", "assistant"])), "content": CONTENT}))
CHAT = st.fixed_dictionaries(
    {"model": MODELS, "messages": mostly(st.lists(MESSAGE, min_size=1, max_size=3))},
    optional={"stream": mostly(st.booleans()), "max_tokens": mostly(st.integers(-5, 2**40)),
              "max_completion_tokens": JSON, "reasoning_effort": mostly(st.sampled_from(["low", "high", "max"])),
              "n": JSON, "stream_options": mostly(st.fixed_dictionaries({"include_usage": JSON})), "temperature": JSON,
              "tools": JSON},
).flatmap(lambda body: st.dictionaries(TEXT, JSON, max_size=2).map(lambda extra: {**extra, **body}))


# Valid requests with odd text: they get past validation, through routing, to the backend.
VALID_CHAT = st.fixed_dictionaries(
    {"model": st.sampled_from(["auto", "small", "thinker", "calibroute-reasoning"]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": TEXT}),
                          min_size=1, max_size=3),
     "stream": st.booleans()},
)


@pytest.fixture(scope="module")
def stack(servers):
    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls, max_body_bytes=200_000, shipped_estimators=True) as gw, httpx.Client(timeout=30) as http:
        yield gw, http


def post(stack, body: bytes) -> httpx.Response:
    gw, http = stack
    r = http.post(gw.v1 + "/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (body[:300], r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    return r


@FUZZ
@given(body=CHAT)
def test_chat_shaped_bodies(stack, body):
    post(stack, json.dumps(body).encode())


@FUZZ
@given(body=VALID_CHAT)
def test_valid_requests_with_odd_text(stack, body):
    post(stack, json.dumps(body).encode())


@FUZZ
@given(body=JSON)
def test_arbitrary_json(stack, body):
    post(stack, json.dumps(body).encode())


@FUZZ
@given(depth=st.integers(1, 1500) | st.integers(960, 995), where=st.sampled_from(["field", "content", "message"]), stream=st.booleans())
def test_deep_nesting(stack, depth, where, stream):
    deep = "[" * depth + "]" * depth
    message = {"field": '{"role": "user", "content": "hi"}', "content": '{"role": "user", "content": %s}' % deep,
               "message": deep}[where]
    body = '{"model": "auto", "stream": %s, "messages": [%s], "x": %s}' % (
        json.dumps(stream), message, deep if where == "field" else "1")
    r = post(stack, body.encode())
    assert r.status_code in (200, 400)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_raw_bytes(stack, raw):
    post(stack, raw)
