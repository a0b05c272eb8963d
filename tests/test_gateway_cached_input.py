"""Cached input tokens: read from each backend's usage shape, priced at the model's cached price, recorded in the
ledger (with what the cache and conversation affinity saved), reported by the report and the dashboard API."""

from __future__ import annotations

import anthropic
import pytest
from fake_backend import chat_usage, client_for, fresh_stack
from sqlalchemy import text
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.config import parse_portfolio
from calibroute.errors import ConfigError
from calibroute.gateway.streaming import Tally
from calibroute.ledger import open_ledger
from calibroute.ledger.report import spend_report

PROMPT = [{"role": "user", "content": "hello there friend"}]  # 3 prompt tokens at the fake backend
RATIO = 0.1  # cached input costs a tenth of fresh input
SMALL_IN, SMALL_OUT = 1.0, 2.0  # the fake portfolio's prices for "small"; "claude" (the largest) is 5 / 10


@pytest.fixture
def cached_gw(servers):
    with fresh_stack(servers, cached_ratio=RATIO) as stack:
        yield stack


def expected_cost(prompt: int, cached: int, completion: int, price_in: float, price_out: float) -> float:
    return ((prompt - cached) * price_in + cached * price_in * RATIO + completion * price_out) / 1e6


@pytest.mark.parametrize("stream", [False, True])
def test_cached_prompt_tokens_are_recorded_and_priced_at_the_cached_price(cached_gw, stream):
    cached_gw.fakes["small"].cached_tokens = 2
    with client_for(cached_gw) as c:
        usage = chat_usage(c, stream, model="small", messages=PROMPT)
    assert usage.prompt_tokens == 3 and usage.prompt_tokens_details.cached_tokens == 2
    row = cached_gw.ledger.rows[-1]
    assert (row.prompt_tokens, row.cached_tokens, row.completion_tokens) == (3, 2, 3)
    assert row.cost_usd == pytest.approx(expected_cost(3, 2, 3, SMALL_IN, SMALL_OUT))
    assert row.cache_saved_usd == pytest.approx(2 * SMALL_IN * (1 - RATIO) / 1e6)
    assert row.baseline_cost_usd == pytest.approx(expected_cost(3, 2, 3, 5.0, 10.0))  # the largest model, cached too
    assert row.affinity_saved_usd == 0.0


def test_messages_stream_reports_cache_reads(cached_gw):
    cached_gw.fakes["small"].cached_tokens = 2
    with anthropic.Anthropic(base_url=cached_gw.url, api_key="unused", max_retries=0) as claude, \
            claude.messages.stream(model="small", max_tokens=100, messages=PROMPT) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == 2 and final.usage.input_tokens == 1
    assert cached_gw.ledger.rows[-1].cached_tokens == 2


def test_without_a_cached_price_cached_tokens_cost_the_input_price(gw):
    gw.fakes["small"].cached_tokens = 2
    with client_for(gw) as c:
        c.chat.completions.create(model="small", messages=PROMPT)
    row = gw.ledger.rows[-1]
    assert row.cached_tokens == 2 and row.cache_saved_usd == 0.0
    assert row.cost_usd == pytest.approx((3 * SMALL_IN + 3 * SMALL_OUT) / 1e6)


def test_affinity_records_what_staying_on_the_model_saved(servers):
    fakes = servers[0]
    with fresh_stack(servers, cached_ratio=RATIO, affinity=True, affinity_jump=False) as stack, client_for(stack) as c:
        for name in ("mid", "thinker"):
            fakes[name].cached_tokens = 1
        for turn in ("hi", "prove that 6 * 7 = 42", "hi"):  # mid, up to thinker, then kept there (routed: mid)
            c.chat.completions.create(model="auto", messages=[{"role": "user", "content": turn}], user="s-1")
        rows = stack.ledger.rows
    assert [r.model for r in rows] == ["mid", "thinker", "thinker"] and rows[-1].route_rule == "affinity"
    assert rows[0].affinity_saved_usd == rows[1].affinity_saved_usd == 0.0  # routed where affinity would put them
    kept = rows[-1]
    # the routed model, its cache holding all of this prompt (the first turn sent mid the same text)
    on_mid = (kept.prompt_tokens * 2.0 * RATIO + kept.completion_tokens * 4.0) / 1e6
    assert kept.cached_tokens == 1 and kept.affinity_saved_usd == pytest.approx(on_mid - kept.cost_usd)


@pytest.mark.parametrize("data, cached", [
    ({"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 7}}}, 7),  # OpenAI, vLLM, llama.cpp
    ({"usage": {"prompt_tokens": 10, "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4}}, 6),  # DeepSeek
    ({"usage": {"prompt_tokens": 10}, "timings": {"cache_n": 5, "prompt_n": 5}}, 5),  # older llama-server
    ({"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}}, 10),  # never above the prompt
    ({"usage": {"prompt_tokens": 10, "prompt_tokens_details": None}}, 0),
])
def test_cached_tokens_are_read_from_each_servers_usage_shape(data, cached):
    tally = Tally(prompt_estimate=1)
    tally.see(data)
    assert tally.cached_tokens == cached


def test_cached_price_defaults_to_the_input_price_and_must_not_be_negative():
    base = ("models:\n  - {name: m, backend: {base_url: 'http://x/v1'}, input_usd_per_mtok: 2, output_usd_per_mtok: 4EXTRA}\n"
            "routes:\n" + "".join(f"  {c}: {{models: [m], budget: {{max_output_tokens: 8}}}}\n"
                                  for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")))
    spec = parse_portfolio(base.replace("EXTRA", "")).model("m")
    assert spec.cached_input_price == 2 and spec.cost_usd(10, 0, cached_tokens=5) == pytest.approx(20 / 1e6)
    spec = parse_portfolio(base.replace("EXTRA", ", cached_input_usd_per_mtok: 0.2")).model("m")
    assert spec.cost_usd(10, 0, cached_tokens=5) == pytest.approx((5 * 2 + 5 * 0.2) / 1e6)
    with pytest.raises(ConfigError, match=r"cached_input_usd_per_mtok: Input should be greater than or equal to 0"):
        parse_portfolio(base.replace("EXTRA", ", cached_input_usd_per_mtok: -1"))


def test_report_and_dashboard_sum_cached_tokens_and_savings(ledger_url):  # noqa: F811
    from calibroute.ledger.dashboard_queries import Window, summary

    with open_ledger(ledger_url) as ledger:
        ledger.record(row(1, model="a", prompt_tokens=100, cached_tokens=80, cache_saved_usd=0.5, cost_usd=1.0))
        ledger.record(row(2, model="a", prompt_tokens=100, cached_tokens=90, cache_saved_usd=0.6, cost_usd=1.0,
                          affinity_saved_usd=0.25, route_rule="affinity"))
        ledger.record(row(3, model="b", prompt_tokens=50))
    with open_ledger(ledger_url) as ledger:
        rep = spend_report(ledger.engine, by=["model"])
        dash = summary(ledger.engine, Window.parse("2h"))
    assert (rep.total.cached_tokens, rep.total.cache_saved_usd, rep.total.affinity_saved_usd) == (170, pytest.approx(1.1), 0.25)
    assert {line.group: line.cached_tokens for line in rep.groups["model"]} == {"a": 170, "b": 0}
    assert (dash["cached_tokens"], dash["cache_saved_usd"], dash["affinity_saved_usd"]) == (170, pytest.approx(1.1), 0.25)


def test_a_ledger_from_before_cached_pricing_gains_the_columns(ledger_url):  # noqa: F811
    from calibroute.ledger import tables
    from calibroute.ledger.migrations import migrate_engine
    from calibroute.ledger.store import make_engine, resolve_url

    with open_ledger(ledger_url) as ledger:
        ledger.record(row(1, prompt_tokens=5))
    engine = make_engine(resolve_url(ledger_url))
    with engine.begin() as conn:  # back to the schema before m006
        for table in ("requests", "requests_hourly", "requests_hourly_by_key"):
            for column in ("cached_tokens", "cache_saved_usd", "affinity_saved_usd"):
                conn.execute(text(f'ALTER TABLE {table} DROP COLUMN "{column}"'))
        conn.execute(tables.migrations.delete().where(tables.migrations.c.name == "m006_cached_input"))
    assert migrate_engine(engine) == ["m006_cached_input"]
    engine.dispose()
    with open_ledger(ledger_url) as ledger:
        ledger.record(row(2, prompt_tokens=5, cached_tokens=4))
    with open_ledger(ledger_url) as ledger:
        assert spend_report(ledger.engine).total.cached_tokens == 4  # the old row reads 0
