"""``calibroute economics`` through the real CLI: JSON keys, errors with suggestions, plot, plans."""

import json

import pytest
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.config import load_portfolio

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, ["economics", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cost_json_has_the_documented_keys_and_consistent_totals():
    data = run_json("cost", "--model", "llama-3.1-70b", "--gpu", "h100", "--precision", "fp8")
    for key in ("tokens_per_s", "tokens_per_s_per_gpu", "gpus", "fits", "usd_per_mtok_input", "usd_per_mtok_output"):
        assert key in data
    assert data["fits"] is True and data["gpus"] == 2  # 70.6 GB of FP8 weights leave no room for a batch on one H100
    assert data["tokens_per_s"] == pytest.approx(data["tokens_per_s_per_gpu"] * data["gpus"])
    assert 0 < data["usd_per_mtok_input"] < data["usd_per_mtok_output"]


def test_cost_with_explicit_gpus_and_concurrency_is_used_as_given():
    data = run_json("cost", "-m", "llama-3.1-8b", "-g", "b200", "--gpus", "2", "--concurrency", "16", "--context", "4000")
    assert data["gpus"] == 2 and data["concurrency"] == 16


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--model", "llama-3.1-70", "--gpu", "h100"], "did you mean llama-3.1-70b"),
        (["--model", "llama-3.1-70b", "--gpu", "b20"], "did you mean b200"),
        (["--model", "llama-3.1-70b", "--gpu", "h100", "--precision", "fp16"], "unknown precision"),
        (["--model", "llama-3.1-405b", "--gpu", "h100", "--precision", "bf16"], "fits on: h100/fp8"),
        (["--model", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "100000"], "does not fit"),
    ],
)
def test_bad_cost_input_is_one_line_with_the_nearest_valid_choices(args, expected):
    result = runner.invoke(app, ["economics", "cost", *args])
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


def test_validate_json_lists_cases_with_sources_and_a_median_within_goal():
    data = run_json("validate")
    case = data["cases"][0]
    assert {"name", "predicted", "measured", "source"} <= set(case)
    assert all(c["predicted"] > 0 and c["measured"] > 0 for c in data["cases"])
    assert data["median_abs_error"] <= 0.30


def test_compare_prints_a_table_and_writes_a_png(tmp_path):
    out = tmp_path / "cmp.png"
    result = runner.invoke(
        app, ["economics", "compare", "--models", "llama-3.1-8b,qwen3-30b-a3b", "--gpus", "h100,rubin", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "rubin" in result.output and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_skips_pairs_that_do_not_fit_and_says_so(tmp_path):
    data = run_json("compare", "--models", "llama-3.1-405b", "--gpus", "h100,b200", "--precision", "bf16",
                    "--plot", str(tmp_path / "c.png"))
    assert [r["gpu"] for r in data["rows"]] == ["b200"]
    assert "does not fit" in data["skipped"][0]


def test_plan_prices_a_mix_measured_by_the_router(tmp_path):
    portfolio = load_portfolio(None)
    routed = tmp_path / "routed.jsonl"
    decisions = [("SIMPLE", "qwen3-4b")] * 6 + [("REASONING", "gpt-oss-120b")] * 3 + [("REASONING", "gpt-5")]
    routed.write_text("".join(json.dumps({"id": i, "task_class": c, "model": m}) + "\n" for i, (c, m) in enumerate(decisions)))
    data = run_json("plan", "--tokens-per-month", "5e9", "--mix", str(routed))
    base, routed_row = data["rows"]
    assert portfolio.largest_model.name in base["name"]
    share = data["input_share"]
    def price(name: str) -> float:
        spec = portfolio.model(name)
        return share * spec.input_usd_per_mtok + (1 - share) * spec.output_usd_per_mtok
    expected = 0.6 * price("qwen3-4b") + 0.3 * price("gpt-oss-120b") + 0.1 * price("gpt-5")
    assert routed_row["usd_per_mtok"] == pytest.approx(expected)
    assert routed_row["annual_usd"] == pytest.approx(12 * 5e9 / 1e6 * expected)
    assert routed_row["annual_savings_usd"] == pytest.approx(base["annual_usd"] - routed_row["annual_usd"])


def test_plan_inline_class_mix_and_hardware_transition_save_money():
    data = run_json("plan", "--tokens-per-month", "5e11", "--mix", "SIMPLE=0.5,REASONING=0.5",
                    "--model", "deepseek-v3", "--gpu", "h200", "--to-gpu", "b200,rubin", "--precision", "fp4")
    names = [r["name"] for r in data["rows"]]
    assert names[1] == "calibrated routing" and "rubin" in names[-1]
    h200, b200, rubin = data["rows"][2:]
    assert h200["instances"] > b200["instances"] > rubin["instances"] >= 1
    assert h200["annual_usd"] > b200["annual_usd"] > rubin["annual_usd"]


def test_a_small_workload_still_pays_for_a_whole_instance():
    small = run_json("plan", "--tokens-per-month", "1e6", "--model", "llama-3.1-8b", "--gpu", "b200")["rows"][0]
    assert small["instances"] == 1
    assert small["monthly_usd"] == pytest.approx(2.90 * 730)  # one B200 at the typical 3-yr rental, all month


@pytest.mark.parametrize(
    "mix,expected",
    [("SIMPLE=abc", "expected NAME=share"), ("no-such-model=1", "unknown model"), ("missing.jsonl", "cannot read")],
)
def test_plan_rejects_bad_mixes_clearly(mix, expected):
    result = runner.invoke(app, ["economics", "plan", "--tokens-per-month", "1e9", "--mix", mix])
    assert result.exit_code == 2 and expected in result.output


def test_catalog_lists_every_gpu_and_model():
    data = run_json("catalog")
    assert {"h100", "h200", "b200", "gb200", "b300", "rubin"} <= {g["id"] for g in data["gpus"]}
    assert {"llama-3.1-8b", "deepseek-v3", "qwen3-235b-a22b", "gpt-oss-120b"} <= {m["id"] for m in data["models"]}


def test_plan_names_the_nearest_api_price_ids():
    result = runner.invoke(app, ["economics", "plan", "--tokens-per-month", "1e9", "--api", "gpt5"])
    assert result.exit_code == 2 and "did you mean gpt-5" in result.output
