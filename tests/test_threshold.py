"""Calibrating the escalation threshold on the user's own traffic (share or cost cap)."""

import json

import numpy as np
import pytest
import yaml
from stubs import KeywordClassifier, LengthDifficulty
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.config import load_portfolio
from calibroute.errors import ConfigError, InputError
from calibroute.router import Router
from calibroute.threshold import read_reference_prompts, replay

# Lengths 100..1000 chars: LengthDifficulty gives p = 1 - len/2000, so longer prompts look harder.
TRAFFIC = [("Prove this. " + "x" * (100 * i))[: 100 * i] for i in range(1, 11)]


def stub_router(**escalation) -> Router:
    portfolio = load_portfolio()
    if escalation:
        data = portfolio.model_dump(mode="json", exclude_none=True)
        data["routing"]["escalation"] = escalation
        portfolio = type(portfolio).model_validate(data)
    return Router(portfolio, KeywordClassifier(), LengthDifficulty())


def write_config(tmp_path, escalation: dict) -> str:
    data = load_portfolio().model_dump(mode="json", exclude_none=True)
    data["routing"]["escalation"] = escalation
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def write_traffic(tmp_path, texts=TRAFFIC, name="traffic.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_share_target_escalates_exactly_that_share_of_the_traffic():
    traffic = replay(stub_router(), TRAFFIC)
    t = traffic.threshold_for_share(0.3)
    assert traffic.escalated_at(t) == 3
    assert np.count_nonzero(traffic.p_weak < t) == 3


def test_cost_cap_picks_the_highest_threshold_within_the_cap():
    traffic = replay(stub_router(), TRAFFIC)
    never, always = traffic.mean_cost_at(0.0), traffic.mean_cost_at(1.0)
    assert always > never
    cap = never + 0.45 * (always - never)
    t = traffic.threshold_for_cost(cap)
    assert traffic.mean_cost_at(t) <= cap
    k = traffic.escalated_at(t)
    assert 0 < k < traffic.n
    one_more = float(traffic.p_weak[k]) + 1e-9  # escalating the next prompt too would break the cap
    assert traffic.mean_cost_at(one_more) > cap


def test_cost_cap_below_the_never_escalate_cost_is_a_clear_error():
    traffic = replay(stub_router(), TRAFFIC)
    with pytest.raises(InputError, match="below the never-escalate cost"):
        traffic.threshold_for_cost(traffic.mean_cost_at(0.0) / 2)


def test_router_calibrates_on_reference_prompts_named_in_the_config(tmp_path):
    write_traffic(tmp_path)
    path = write_config(tmp_path, {"strong_share": 0.5, "reference_prompts": "traffic.jsonl"})  # relative to config
    portfolio = load_portfolio(path)
    assert portfolio.routing.escalation.reference_prompts == tmp_path / "traffic.jsonl"
    router = Router(portfolio, KeywordClassifier(), LengthDifficulty())
    expected = replay(router, TRAFFIC).threshold_for_share(0.5)
    assert router.threshold == pytest.approx(expected)
    assert sum(LengthDifficulty().p_weak_suffices(t) < router.threshold for t in TRAFFIC) == 5


def test_cost_cap_in_config_needs_reference_prompts(tmp_path):
    with pytest.raises(ConfigError, match="routing.escalation: .*needs reference_prompts"):
        load_portfolio(write_config(tmp_path, {"max_avg_cost_usd": 0.01}))


def test_missing_reference_file_is_named_with_its_line(tmp_path):
    with pytest.raises(ConfigError, match=r"portfolio.yaml:\d+: routing.escalation.reference_prompts: .*not found"):
        load_portfolio(write_config(tmp_path, {"reference_prompts": "nope.jsonl"}))


def test_bad_reference_line_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": 3}\n')
    with pytest.raises(InputError, match=r"t.jsonl:2: expected an object"):
        read_reference_prompts(path)


def test_cli_reports_sweep_and_writes_a_portfolio_with_the_threshold_pinned(tmp_path, stub_estimators):
    traffic = write_traffic(tmp_path)
    out = tmp_path / "pinned.yaml"
    result = CliRunner().invoke(app, ["config", "threshold", "--prompts", str(traffic), "--strong-share", "0.2",
                                      "--write", str(out)])
    assert result.exit_code == 0, result.output
    assert "10 prompts" in result.output and "<- target" in result.output
    pinned = load_portfolio(out)
    assert pinned.routing.escalation.threshold is not None
    assert sum(LengthDifficulty().p_weak_suffices(t) < pinned.routing.escalation.threshold for t in TRAFFIC) == 2


def test_cli_bad_traffic_file_is_one_line_error(tmp_path, stub_estimators):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "ok"}\nnot json\n')
    result = CliRunner().invoke(app, ["config", "threshold", "--prompts", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:2: not a JSON line" in result.output


def ladder_config(tmp_path, escalation: dict) -> str:
    data = load_portfolio().model_dump(mode="json", exclude_none=True)
    data["routes"]["REASONING"]["escalate_to"] = ["qwen3-235b-a22b", "gpt-5"]
    data["routing"]["escalation"] = escalation
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_replay_prices_every_rung_of_a_ladder(tmp_path):
    router = Router(load_portfolio(ladder_config(tmp_path, {"strong_share": 0.3})), KeywordClassifier(), LengthDifficulty())
    traffic = replay(router, TRAFFIC)  # every TRAFFIC prompt says "Prove": the REASONING ladder of 3 models
    assert traffic.rung_costs is not None and traffic.rung_costs.shape == (10, 3)
    assert (np.diff(traffic.rung_costs, axis=1) > 0).all()  # qwen3-235b-a22b, then gpt-5 cost more
    assert traffic.mean_cost_at_level(0.0) == pytest.approx(traffic.mean_cost_at(0.0))
    assert traffic.mean_cost_at_level(1.0) == pytest.approx(float(np.mean(traffic.rung_costs[:, 2])))


def test_cost_cap_on_a_ladder_picks_the_highest_level_within_the_cap(tmp_path):
    write_traffic(tmp_path)
    plain = Router(load_portfolio(ladder_config(tmp_path, {"strong_share": 0.3})), KeywordClassifier(), LengthDifficulty())
    traffic = replay(plain, TRAFFIC)
    cap = traffic.mean_cost_at_level(0.0) + 0.3 * (traffic.mean_cost_at_level(1.0) - traffic.mean_cost_at_level(0.0))
    path = ladder_config(tmp_path, {"max_avg_cost_usd": cap, "reference_prompts": "traffic.jsonl"})
    router = Router(load_portfolio(path), KeywordClassifier(), LengthDifficulty())
    assert router.level is not None and 0.0 < router.level < 1.0
    assert traffic.mean_cost_at_level(router.level) <= cap < traffic.mean_cost_at_level(router.level + 0.06)
    decisions = [router.decide(prompt=t) for t in TRAFFIC]
    assert float(np.mean([d.estimated_cost_usd for d in decisions])) <= cap * (1 + 1e-9)
    assert {d.model for d in decisions} >= {"qwen3-235b-a22b"}


def test_cli_prints_each_ladder_rung_and_the_pinned_ladder_reproduces_them(tmp_path, stub_estimators):
    traffic = write_traffic(tmp_path)
    out = tmp_path / "pinned.yaml"
    result = CliRunner().invoke(app, ["config", "threshold", "--prompts", str(traffic), "--strong-share", "0.75",
                                      "--config", ladder_config(tmp_path, {"strong_share": 0.3}), "--write", str(out)])
    assert result.exit_code == 0, result.output
    assert "REASONING ladder: gpt-oss-120b; qwen3-235b-a22b if P < " in result.output and "gpt-5 if P < " in result.output
    pinned = Router(load_portfolio(out), KeywordClassifier(), LengthDifficulty())
    # level 0.75 on a 3-model ladder: all 10 prompts pass rung 1, the hardest 5 reach gpt-5
    models = [pinned.decide(prompt=t).model for t in TRAFFIC]
    assert models.count("gpt-5") == 5 and models.count("qwen3-235b-a22b") == 5
