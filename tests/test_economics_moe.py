"""Mixture-of-experts serving (issue 15): layouts, expert imbalance, speculative decoding, error bands, targets."""

import json

import pytest
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.economics.bands import band_for
from calibroute.economics.catalog import load_catalog
from calibroute.economics.moe import ep_imbalance, kernels_per_layer
from calibroute.economics.roofline import Deployment, Efficiency, Workload, decode_step, estimate, weight_bytes_per_gpu
from calibroute.economics.speculative import Speculation, parse_speculation
from calibroute.economics.validate import load_cases, summary, validate
from calibroute.errors import InputError

CAT = load_catalog()
runner = CliRunner()


def r1(gpu: str = "b200", precision: str = "fp8", gpus: int = 8, layout: str = "auto", spec: Speculation | None = None):
    return Deployment(CAT.model("deepseek-r1"), CAT.gpu(gpu), precision, "fp8", gpus, layout, spec)  # type: ignore[arg-type]


def test_attention_dp_replicates_the_non_expert_weights_on_every_gpu():
    model = CAT.model("deepseek-r1")
    non_expert = (model.total_params_b * 1e9 - model.routed_params()) * 1.0
    tp, dp = r1(layout="tp"), r1(layout="dp")
    assert weight_bytes_per_gpu(tp) == pytest.approx(model.total_params_b * 1e9 / 8)
    assert weight_bytes_per_gpu(dp) == pytest.approx(non_expert + model.routed_params() / 8)


def test_expert_imbalance_only_under_expert_parallelism_and_shrinks_with_more_tokens():
    model = CAT.model("deepseek-r1")
    assert ep_imbalance(model, 1000, 1, 1.2) == 1.0
    small, large = ep_imbalance(model, 16, 8, 1.2), ep_imbalance(model, 8192, 8, 1.2)
    assert 8 >= small > large > 1.0
    assert ep_imbalance(model, 8192, 8, 0.0) < large  # skewed expert popularity adds to sampling noise
    eff = Efficiency()
    balanced = decode_step(r1(layout="dp"), 4096, 1500, Efficiency(expert_skew=0.0)).compute_s
    assert decode_step(r1(layout="dp"), 4096, 1500, eff).compute_s > balanced


def test_kernel_counts_follow_the_architecture():
    assert kernels_per_layer(CAT.model("llama-3.1-8b")) == 9
    assert kernels_per_layer(CAT.model("qwen3-235b-a22b")) == 6 + 7  # GQA + routed experts, no shared expert
    assert kernels_per_layer(CAT.model("deepseek-r1")) > kernels_per_layer(CAT.model("qwen3-235b-a22b"))  # MLA, shared


def test_auto_layout_is_tensor_parallel_at_batch_one_and_attention_dp_at_max_throughput():
    work = Workload(1000, 1000)
    assert estimate(r1(), work, concurrency=1).layout == "tp"
    assert estimate(r1(precision="fp4"), work).layout == "dp"


def test_speculation_yields_the_geometric_expected_tokens_per_step():
    spec = Speculation(draft_tokens=3, acceptance=0.7)
    assert spec.tokens_per_step == pytest.approx(1 + 0.7 + 0.49 + 0.343)
    assert Speculation(1, 0.0).tokens_per_step == 1.0


def test_mtp_speeds_up_batch_one_and_useless_drafts_slow_it_down():
    work = Workload(1000, 2000)
    plain = estimate(r1(layout="tp"), work, concurrency=1).user_tokens_per_s
    mtp = estimate(r1(layout="tp", spec=Speculation()), work, concurrency=1).user_tokens_per_s
    rejected = estimate(r1(layout="tp", spec=Speculation(3, 0.0)), work, concurrency=1).user_tokens_per_s
    assert 1.6 < mtp / plain < 2.6  # TensorRT-LLM measured 2.16x for MTP-3 on 8 B200
    assert rejected < plain


@pytest.mark.parametrize("text", ["eagle", "mtp:x", "mtp:3:1.5", "mtp:0"])
def test_bad_speculative_options_are_input_errors(text):
    with pytest.raises(InputError):
        parse_speculation(text)


def test_cost_with_speculative_option_reports_more_tokens_per_step():
    args = ["economics", "cost", "-m", "deepseek-r1", "-g", "b200", "-p", "fp4", "--gpus", "8", "--concurrency", "1"]
    plain = json.loads(runner.invoke(app, [*args, "--json"]).output)
    mtp = json.loads(runner.invoke(app, [*args, "--speculative", "mtp:3:0.8", "--json"]).output)
    assert mtp["details"]["tokens_per_step"] == pytest.approx((1 - 0.8**4) / 0.2)
    assert mtp["tokens_per_s"] > 1.5 * plain["tokens_per_s"]
    bad = runner.invoke(app, [*args, "--speculative", "eagle"])
    assert bad.exit_code == 2 and "unknown speculative decoding" in bad.output


def test_error_band_comes_from_the_family_or_falls_back_to_the_kind():
    deepseek, kimi, llama = band_for(CAT.model("deepseek-v3")), band_for(CAT.model("kimi-k2")), band_for(CAT.model("llama-3.1-8b"))
    assert deepseek.basis == "deepseek" and deepseek.cases >= 10 and deepseek.low < 0 < deepseek.high
    assert kimi.basis == "all moe models" and kimi.cases > deepseek.cases
    assert llama.basis == "llama"


def test_compare_and_plan_show_the_band(tmp_path):
    out = runner.invoke(app, ["economics", "compare", "--models", "deepseek-v3", "--gpus", "b200", "--precision", "fp4",
                              "--plot", str(tmp_path / "c.png"), "--json"])
    row = json.loads(out.output)["rows"][0]
    assert row["throughput_band"]["basis"] == "deepseek"
    plan = runner.invoke(app, ["economics", "plan", "--tokens-per-month", "5e11", "--model", "deepseek-v3", "--gpu", "b200",
                               "--precision", "fp4", "--json"])
    hosted = json.loads(plan.output)["rows"][0]
    cheap, dear = hosted["annual_range_usd"]
    assert cheap <= hosted["annual_usd"] <= dear


def test_new_moe_cases_span_engines_and_vendors_and_keep_a_split():
    cases, sources = load_cases()
    moe = [c for c in cases if CAT.model(c.model).is_moe]
    engines = {c.engine for c in moe}
    assert {"SGLang", "TensorRT-LLM", "vLLM"} <= engines
    assert {"mi300x", "mi355x"} & {c.gpu for c in moe} and {"h200", "b200"} <= {c.gpu for c in moe}
    assert all(sources[c.ref].source and sources[c.ref].date for c in cases)
    assert {c.split for c in moe} >= {"fit", "holdout"}


def test_moe_and_dense_error_targets_hold_on_the_holdout_cases():
    groups = summary(validate())
    assert groups["moe/holdout"]["median"] <= 0.25 and groups["moe/holdout"]["worst"] <= 0.60
    assert groups["dense/holdout"]["median"] <= 0.15
    assert groups["moe/holdout"]["cases"] >= 20


def test_an_unreachable_per_user_speed_is_said_not_silently_missed():
    result = runner.invoke(app, ["economics", "cost", "-m", "deepseek-v3", "-g", "b200", "-p", "fp4", "--gpus", "8",
                                 "--min-user-tps", "400", "--context", "8000"])
    assert result.exit_code == 0 and "out of reach" in result.output
    fine = runner.invoke(app, ["economics", "cost", "-m", "deepseek-v3", "-g", "b200", "-p", "fp4", "--gpus", "8",
                               "--min-user-tps", "20"])
    assert "out of reach" not in fine.output
