"""`eval` on score-only data (judge scores, no costs): the strong/weak pair on the share of strong calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_run import STANDIN, synthetic
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.errors import DataError
from calibroute.evaluate import learners
from calibroute.evaluate.report import SHARE_BASIS, EvalOptions, run_eval
from calibroute.outcomes import OutcomeSet, load_outcomes_file


def _write(path: Path, out: OutcomeSet, cost_of: dict[str, float] | None = None) -> Path:
    """The long format with prompt_id, prompt, model, score (and cost_usd for the models in ``cost_of``)."""
    with path.open("w", encoding="utf-8") as fh:
        for i, pid in enumerate(out.prompt_ids):
            for j, m in enumerate(out.models):
                rec = {"prompt_id": pid, "prompt": out.prompts[i], "model": m, "score": out.scores[i, j]}
                if cost_of and m in cost_of:
                    rec["cost_usd"] = cost_of[m]
                fh.write(json.dumps(rec) + "\n")
    return path


def test_score_only_file_is_evaluated_on_strong_call_share(tmp_path: Path) -> None:
    data = load_outcomes_file(_write(tmp_path / "judge.jsonl", synthetic(models=3)))
    assert not data.has_costs
    report = run_eval(data, EvalOptions(router="cv"), estimators=STANDIN)
    assert report.basis == SHARE_BASIS
    assert (report.strong, report.weak) == ("m0", "m1") and report.models == ["m0", "m1"]  # m1, m2 tie: the first
    assert any("share of strong-model calls" in n and "not evaluated: m2" in n for n in report.notes)
    # the pair metrics are those of the same data with dollar costs (points (0, .6), (.4, 1), (1, 1): APGR 0.8)
    priced = run_eval(synthetic(models=3).select_models(["m0", "m1"]), EvalOptions(router="cv"), estimators=STANDIN)
    for name in ("calibroute", "random", "oracle"):
        assert report.results[name].apgr == pytest.approx(priced.results[name].apgr)
        assert report.results[name].cpt50 == pytest.approx(priced.results[name].cpt50)
    assert report.results["calibroute"].apgr == pytest.approx(0.8, abs=0.02)
    for res in report.results.values():
        assert res.saved_at_95 is None and all(v is None for v in res.at_budget.values())
    strong_pt = report.results["always:m0"].curve.points
    np.testing.assert_allclose(strong_pt[0], [1.0, 1.0])  # cost axis = share of strong calls


def test_cli_score_only_prints_no_dollar_columns_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("calibroute.evaluate.report.default_estimators", lambda: STANDIN)
    monkeypatch.setattr(learners, "default_estimators", lambda: STANDIN)
    src = _write(tmp_path / "judge.jsonl", synthetic())
    result = CliRunner().invoke(app, ["eval", str(src), "--router", "cv", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "saved@95%" not in result.output.replace("calls saved@95%", "") and "q@10%" not in result.output
    assert "share of strong-model calls" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["cost_basis"] == SHARE_BASIS
    assert report["strategies"]["calibroute"]["cost_saved_at_95pct_quality"] is None


def test_dropped_rows_name_the_missing_column_and_model(tmp_path: Path) -> None:
    """One model with costs, one without: every prompt is incomplete, and the error says which column."""
    data = load_outcomes_file(_write(tmp_path / "mixed.jsonl", synthetic(), cost_of={"m0": 0.01}))
    with pytest.raises(DataError) as err:
        run_eval(data, EvalOptions(router="cv"), estimators=STANDIN)
    msg = str(err.value)
    assert "0 of 200 prompts" in msg and "no cost for m1 on 200" in msg and "cost_usd" in msg and "m0" not in msg


def test_missing_rows_are_named_in_the_note(tmp_path: Path) -> None:
    path = _write(tmp_path / "judge.jsonl", synthetic())
    lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["prompt_id"] != "p1" or json.loads(ln)["model"] != "m1"]
    path.write_text("\n".join(lines) + "\n")
    report = run_eval(load_outcomes_file(path), EvalOptions(router="cv"), estimators=STANDIN)
    assert report.n_prompts == 199
    assert any("dropped 1 of 200 prompts: no score (no row) for m1 on 1" in n for n in report.notes)
