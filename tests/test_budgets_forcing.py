"""Budget translation per API, and s1-style think-budget forcing against a real local HTTP server."""

from __future__ import annotations

import asyncio

import pytest
from fake_backend import ANSWER, THINK_TOKEN, FakeModel, serve_models

from calibroute.backends.openai_compat import OpenAICompatBackend
from calibroute.budgets import ForcingConfig, ThinkForcer, ThinkLimits, ThinkTagParser, translate_budget
from calibroute.budgets.forcing import initial_body
from calibroute.config import Budget, ModelSpec, ReasoningControl
from calibroute.types import Hints

R = ReasoningControl
THINK = Budget(max_output_tokens=4096, thinking=True, thinking_budget_tokens=2048, effort="high")
OFF = Budget(max_output_tokens=512, thinking=False)


@pytest.mark.parametrize(("budget", "control", "params"), [
    (THINK, R.NONE, {"max_tokens": 4096}),
    (THINK, R.REASONING_EFFORT, {"max_completion_tokens": 4096, "reasoning_effort": "high"}),
    (OFF, R.REASONING_EFFORT, {"max_completion_tokens": 512, "reasoning_effort": "low"}),
    (Budget(max_output_tokens=4096, thinking=True, thinking_budget_tokens=500), R.REASONING_EFFORT,
     {"max_completion_tokens": 4096, "reasoning_effort": "low"}),
    (THINK, R.BUDGET_TOKENS, {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048}}),
    (Budget(max_output_tokens=4096, thinking=True, thinking_budget_tokens=100), R.BUDGET_TOKENS,
     {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
    (Budget(max_output_tokens=1024, thinking=True, thinking_budget_tokens=512), R.BUDGET_TOKENS,
     {"max_tokens": 1024, "thinking": {"type": "disabled"}}),
    (Budget(max_output_tokens=1500, thinking=True), R.BUDGET_TOKENS,
     {"max_tokens": 1500, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
    (OFF, R.BUDGET_TOKENS, {"max_tokens": 512, "thinking": {"type": "disabled"}}),
    (THINK, R.ENABLE_THINKING, {"max_tokens": 4096, "chat_template_kwargs": {"enable_thinking": True}}),
    (OFF, R.ENABLE_THINKING, {"max_tokens": 512, "chat_template_kwargs": {"enable_thinking": False}}),
    (THINK, R.THINK_TAGS, {"max_tokens": 4096}),
])
def test_budget_translates_to_each_apis_control(budget, control, params):
    assert translate_budget(budget, control).params == params


def test_anthropic_budget_stays_within_the_api_rules():
    for n in (1025, 2000, 50_000):
        for tb in (0, 1, 1023, 1024, n - 1):
            tr = translate_budget(Budget(max_output_tokens=n, thinking=True, thinking_budget_tokens=tb), R.BUDGET_TOKENS)
            granted = tr.params["thinking"]["budget_tokens"]
            assert 1024 <= granted < n


def test_vllm_thinking_token_budget_only_where_the_server_has_it():
    assert "thinking_token_budget" not in translate_budget(THINK, R.ENABLE_THINKING).params
    assert translate_budget(THINK, R.ENABLE_THINKING, native_thinking_budget=True).params["thinking_token_budget"] == 2048
    assert "thinking_token_budget" not in translate_budget(OFF, R.ENABLE_THINKING, native_thinking_budget=True).params


def test_think_tags_limits_come_from_the_budget():
    assert translate_budget(THINK, R.THINK_TAGS, min_think_tokens=300).think == ThinkLimits(2048, 300)
    assert translate_budget(OFF, R.THINK_TAGS, min_think_tokens=300).think == ThinkLimits(0, 0)


def test_client_caps_lower_the_budget_and_replace_the_clients_keys():
    tr = translate_budget(THINK, R.REASONING_EFFORT, Hints(max_output_tokens=1000, effort="low"))
    assert tr.params == {"max_completion_tokens": 1000, "reasoning_effort": "low"}
    body = tr.apply({"messages": [], "max_tokens": 5, "reasoning_effort": "high", "temperature": 0})
    assert body == {"messages": [], "temperature": 0, "max_completion_tokens": 1000, "reasoning_effort": "low"}
    merged = translate_budget(OFF, R.ENABLE_THINKING).apply({"chat_template_kwargs": {"custom": 1, "enable_thinking": True}})
    assert merged["chat_template_kwargs"] == {"custom": 1, "enable_thinking": False}


@pytest.mark.parametrize("cuts", [[1], [3, 9], list(range(1, 40))])
def test_parser_finds_tags_split_across_deltas(cuts):
    text = "<think>a b c</think>\n\nanswer <think>x"
    pieces, last = [], 0
    parser = ThinkTagParser("<think>", "</think>")
    for cut in [c for c in cuts if c < len(text)] + [len(text)]:
        pieces += parser.feed(text[last:cut])
        last = cut
    pieces += parser.flush()
    joined: dict[str, str] = {}
    for kind, piece in pieces:
        joined[kind] = joined.get(kind, "") + piece
    assert joined == {"open": "<think>", "think": "a b c", "close": "</think>", "answer": "\n\nanswer <think>x"}


# -- forcing against a real HTTP server --------------------------------------------------------
@pytest.fixture(scope="module")
def thinker():
    fake = FakeModel(name="thinker")
    with serve_models(fake) as urls:
        yield fake, urls["thinker"]


def force(url: str, limits: ThinkLimits, cfg: ForcingConfig = ForcingConfig(), max_tokens: int = 1000):
    spec = ModelSpec.model_validate({"name": "thinker", "backend": {"base_url": url + "/v1"}, "input_usd_per_mtok": 1,
                                     "output_usd_per_mtok": 1, "reasoning": "think_tags"})

    async def run():
        backend = OpenAICompatBackend(spec)
        try:
            body = initial_body({"messages": [{"role": "user", "content": "q"}], "max_tokens": max_tokens,
                                 "stream": True, "stream_options": {"include_usage": True}}, limits, cfg)
            forcer = ThinkForcer(await backend.open_stream(body), backend.open_stream, body, limits, cfg)
            text = "".join([(ev.data["choices"][0]["delta"].get("content") or "") async for ev in forcer])
            await forcer.aclose()
            return text, forcer
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_thinking_is_capped_and_the_model_is_made_to_answer(thinker):
    fake, url = thinker
    fake.think_words, fake.requests = 50, []
    text, forcer = force(url, ThinkLimits(max_tokens=12))
    assert text == "<think>" + THINK_TOKEN * 12 + "\n</think>\n\nFinal Answer:  " + ANSWER
    assert forcer.forced_close and forcer.think_tokens == 12 and forcer.calls == 2
    prefill = fake.requests[1]["messages"][-1]
    assert prefill == {"role": "assistant", "content": "<think>" + THINK_TOKEN * 12 + "\n</think>\n\nFinal Answer: "}
    assert fake.requests[1]["max_tokens"] == 1000 - 12  # the output cap covers both calls


def test_short_thinking_is_extended_with_wait(thinker):
    fake, url = thinker
    fake.think_words, fake.extra_think_words, fake.requests = 4, 6, []
    text, forcer = force(url, ThinkLimits(max_tokens=None, min_tokens=8))
    assert text == "<think>" + THINK_TOKEN * 4 + "\nWait " + THINK_TOKEN * 6 + "</think>\n\n" + ANSWER
    assert forcer.waits == 1 and not forcer.forced_close
    assert fake.requests[1]["messages"][-1]["content"].endswith(THINK_TOKEN * 4 + "\nWait")
    assert forcer.think_tokens == 4 + 1 + 1 + 6  # thinking, "Wait", the continuation's leading " ", more thinking


def test_extension_stops_after_max_waits(thinker):
    fake, url = thinker
    fake.think_words, fake.extra_think_words, fake.requests = 2, 1, []
    _, forcer = force(url, ThinkLimits(max_tokens=None, min_tokens=1000), ForcingConfig(max_waits=2))
    assert forcer.waits == 2 and len(fake.requests) == 3


def test_cap_applies_to_thinking_extended_by_wait(thinker):
    fake, url = thinker
    fake.think_words, fake.extra_think_words, fake.requests = 4, 50, []
    text, forcer = force(url, ThinkLimits(max_tokens=10, min_tokens=8))
    assert forcer.waits == 1 and forcer.forced_close and forcer.think_tokens == 10
    assert text.endswith("</think>\n\nFinal Answer:  " + ANSWER)


def test_thinking_off_prefills_an_empty_think_block(thinker):
    fake, url = thinker
    fake.think_words, fake.requests = 50, []
    text, forcer = force(url, ThinkLimits(max_tokens=0))
    assert text == " " + ANSWER  # the prefilled empty block is not shown
    assert len(fake.requests) == 1 and fake.requests[0]["messages"][-1]["content"] == "<think>\n\n</think>\n\n"
    assert forcer.think_tokens == 0


def test_uncapped_thinking_is_only_counted(thinker):
    fake, url = thinker
    fake.think_words, fake.requests = 30, []
    text, forcer = force(url, ThinkLimits(max_tokens=None))
    assert text == "<think>" + THINK_TOKEN * 30 + "</think>\n\n" + ANSWER
    assert forcer.think_tokens == 30 and len(fake.requests) == 1
    assert forcer.usage["completion_tokens"] > 30
