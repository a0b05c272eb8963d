"""``calibroute shootout`` against a real model: llama.cpp's llama-server with SmolLM2-135M.

Started (and skipped when not installed) by the ``llama`` fixture of test_llama_e2e.py; a
handful of GSM8K and MMLU-STEM items, short answers. What is checked is the plumbing on real
streamed output (tokens, timings, dollars, grading, outcomes), not the tiny model's accuracy.
"""

from __future__ import annotations

import json

import pytest
from test_llama_e2e import EXAMPLE, EXAMPLE_URL, MODEL, llama  # noqa: F401 - llama is the server fixture
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.outcomes import load_outcomes_file

pytestmark = pytest.mark.llama


def test_a_shootout_on_gsm8k_and_mmlu_items_records_real_calls(llama, tmp_path) -> None:  # noqa: F811
    config = tmp_path / "local-llama.yaml"
    config.write_text(EXAMPLE.read_text("utf-8").replace(EXAMPLE_URL, llama.v1), "utf-8")
    out = tmp_path / "outcomes.jsonl"
    result = CliRunner().invoke(app, ["shootout", "gsm8k:3", "mmlu-stem:3", "--config", str(config), "--models", MODEL,
                                      "--max-tokens", "48", "--concurrency", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(rows) == 6 and {r["task"] for r in rows} == {"gsm8k", "mmlu-stem"}
    for r in rows:
        assert "error" not in r, r
        assert r["score"] in (0.0, 1.0)
        assert r["input_tokens"] > 20 and 0 < r["output_tokens"] <= 48
        assert 0 < r["ttft_s"] <= r["latency_s"] and r["tokens_per_s"] > 0
        assert r["cost_usd"] == pytest.approx((r["input_tokens"] * 0.005 + r["output_tokens"] * 0.01) / 1e6)
    assert load_outcomes_file(out).models == [f"{MODEL}@no-think"]
    assert "accuracy" in result.output and (tmp_path / "outcomes.png").is_file()
