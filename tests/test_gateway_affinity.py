"""Conversation affinity: an agent's conversation stays on its model; it moves only upward, never on a tool turn."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fake_backend import fresh_stack, gateway_stack, reset

from calibroute.gateway.affinity import Affinity, answers_a_tool_call, conversation_key

SIMPLE_TURN = "hi"  # the stub estimators: GENERAL -> mid
HARD_TURN = "prove that 6 * 7 = 42"  # REASONING -> thinker (pricier than mid)
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
def sticky(servers):
    with fresh_stack(servers, affinity=True, affinity_jump=False) as stack:  # climbs to the routed model
        yield stack


def models_of(stack) -> list[str]:
    return [row.model for row in stack.ledger.rows]


def test_keys_prefer_the_clients_conversation_id():
    assert conversation_key({"messages": [], "user": "u"}, {"prompt_cache_key": "pc"}) == "prompt_cache_key:pc"
    assert conversation_key({"messages": [], "user": "sess-1"}) == "user:sess-1"
    first = conversation_key({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}]})
    later = conversation_key({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                                           {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]})
    assert first == later and first.startswith("head:")
    assert answers_a_tool_call({"messages": [{"role": "tool", "content": "x"}]})


def test_a_conversation_moves_up_but_never_down(sticky):
    import openai

    with openai.OpenAI(base_url=sticky.v1, api_key="unused", max_retries=0) as c:
        for turn in (SIMPLE_TURN, HARD_TURN, SIMPLE_TURN):  # the same session (user), turns that route differently
            c.chat.completions.create(model="auto", messages=[{"role": "user", "content": turn}], user="session-1")
    assert models_of(sticky) == ["mid", "thinker", "thinker"]  # up to the pricier model, then not back down
    assert sticky.ledger.rows[-1].route_rule == "affinity"


def test_without_affinity_the_same_conversation_bounces(servers):
    import openai

    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls) as stack, openai.OpenAI(base_url=stack.v1, api_key="unused", max_retries=0) as c:
        for turn in (SIMPLE_TURN, HARD_TURN, SIMPLE_TURN):
            c.chat.completions.create(model="auto", messages=[{"role": "user", "content": turn}], user="session-1")
        assert models_of(stack) == ["mid", "thinker", "mid"]


def test_a_tool_result_turn_stays_on_the_model_that_made_the_call(portfolio_and_decisions):
    affinity, decide = portfolio_and_decisions
    first = affinity.apply("k", decide(HARD_TURN), tool_turn=False)
    assert first.model == "thinker"
    # the tool turn routes cheaper (its text looks simple); it stays where the call was made
    tool_turn = affinity.apply("k", decide(SIMPLE_TURN), tool_turn=True)
    assert tool_turn.model == "thinker" and tool_turn.rule == "affinity" and "tool call" in tool_turn.reason
    assert tool_turn.fallbacks and "thinker" not in tool_turn.fallbacks


def test_explicit_models_are_never_overridden(portfolio_and_decisions):
    affinity, decide = portfolio_and_decisions
    affinity.apply("k", decide(HARD_TURN), tool_turn=False)
    explicit = decide(SIMPLE_TURN, model="small")
    assert affinity.apply("k", explicit, tool_turn=False).model == "small"


@pytest.fixture
def portfolio_and_decisions(servers):
    from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import parse_portfolio
    from calibroute.router import Router
    from calibroute.types import Hints

    _, urls = servers
    portfolio = parse_portfolio(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())

    def decide(text: str, model: str | None = None):
        return router.decide(messages=[{"role": "user", "content": text}], hints=Hints(model=model))

    return Affinity(portfolio, jump=False), decide


def test_a_conversation_leaves_a_far_dearer_model_when_staying_costs_more(portfolio_and_decisions):
    """Escalated to the dearest model for one hard turn, a conversation of cheap turns goes back down: the cache
    discount on the dear model does not pay for its price; it lands on the cheapest model for the turn among the
    routed one and those it has been on (whose caches hold it)."""
    affinity, decide = portfolio_and_decisions
    affinity.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_000)  # mid
    dear = decide(HARD_TURN)
    claude = replace(dear, model="claude", fallbacks=[])  # the route's escalation rung (5 / 10 per million)
    assert affinity.apply("k", claude, tool_turn=False, tokens=10_100).model == "claude"
    assert affinity.apply("k", decide(SIMPLE_TURN), tool_turn=True, tokens=10_200).model == "claude"  # tool turn stays
    back = affinity.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_300)
    assert back.model == "mid" and affinity.released == 1
    # between models of similar price it stays: thinker (3 / 6) costs under twice what mid (2 / 4) would
    affinity.apply("j", decide(HARD_TURN), tool_turn=False, tokens=10_000)
    assert affinity.apply("j", decide(SIMPLE_TURN), tool_turn=False, tokens=10_100).model == "thinker"


def test_without_release_a_conversation_only_escalates(portfolio_and_decisions):
    affinity, decide = portfolio_and_decisions
    strict = Affinity(affinity.portfolio, jump=False, release=False)
    strict.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_000)  # mid
    strict.apply("k", replace(decide(HARD_TURN), model="claude", fallbacks=[]), tool_turn=False, tokens=10_100)
    stays = strict.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_300)
    assert stays.model == "claude" and stays.rule == "affinity" and strict.released == 0


def test_a_climbing_conversation_jumps_to_its_routes_highest_affordable_rung(portfolio_and_decisions):
    """Routed up from mid to thinker, a long conversation goes straight to the route's escalation rung (claude, 5 / 10
    per million) when this turn costs there under twice what it costs on thinker (3 / 6): one climb, not two; a
    later turn routed to thinker again stays. A rung dearer than that is not taken."""
    stepping, decide = portfolio_and_decisions
    jumping = Affinity(stepping.portfolio, jump=True)
    jumping.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_000)  # mid
    climbed = jumping.apply("k", decide(HARD_TURN), tool_turn=False, tokens=10_100)
    assert climbed.model == "claude" and climbed.rule == "affinity" and "climbs once" in climbed.reason
    assert climbed.fallbacks[0] == "thinker"
    assert jumping.apply("k", decide(HARD_TURN), tool_turn=False, tokens=10_200).model == "claude"
    assert stepping.apply("s", decide(SIMPLE_TURN), tool_turn=False, tokens=10_000).model == "mid"  # without the jump
    assert stepping.apply("s", decide(HARD_TURN), tool_turn=False, tokens=10_100).model == "thinker"
    strict = Affinity(stepping.portfolio, jump=True, release_ratio=1.2)  # claude costs ~1.7x thinker per turn here
    strict.apply("k", decide(SIMPLE_TURN), tool_turn=False, tokens=10_000)
    assert strict.apply("k", decide(HARD_TURN), tool_turn=False, tokens=10_100).model == "thinker"
