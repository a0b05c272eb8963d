"""run_eval and `calibroute eval` end to end on small synthetic outcomes with stand-in estimators."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from calibroute.classify.difficulty_data import hash_heldout, near_dup_keys
from calibroute.cli import app
from calibroute.errors import InputError
from calibroute.evaluate import learners
from calibroute.evaluate.learners import (
    CalibrouteEstimators,
    gain_labels,
    make_folds,
    shipped_estimator_split,
)
from calibroute.evaluate.report import EvalOptions, combine_p_weak, run_eval
from calibroute.outcomes import OutcomeSet

WORDS = ["easy", "hard"]


def synthetic(n: int = 200, models: int = 2, seed: int = 1) -> OutcomeSet:
    """Prompts saying 'hard' defeat the cheap model(s); 'easy' ones any model answers."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    prompts = [f"{'hard' if h else 'easy'} question number {i} about {rng.integers(1000)}" for i, h in enumerate(hard)]
    scores = np.ones((n, models))
    scores[:, 1:] = np.where(hard[:, None], 0.0, 1.0)
    costs = np.tile(np.geomspace(1e-3, 1e-5, models), (n, 1))
    return OutcomeSet("toy", [f"p{i}" for i in range(n)], prompts, [f"m{j}" for j in range(models)], scores, costs,
                      None, None, [])


def p_weak_by_word(texts: list[str]) -> np.ndarray:
    return np.array([0.1 if "hard" in t else 0.9 for t in texts])


STANDIN = CalibrouteEstimators(
    classify=lambda texts: np.array(["REASONING"] * len(texts)),
    pretrained=p_weak_by_word,
    fit=lambda texts, labels: p_weak_by_word,
)


def test_every_strategy_is_reported_with_the_issue_names() -> None:
    report = run_eval(synthetic(), EvalOptions(), estimators=STANDIN)
    assert {"calibroute", "random", "oracle", "knn", "mf", "cascade", "always:m0", "always:m1"} <= set(report.results)
    assert (report.strong, report.weak) == ("m0", "m1")


def test_a_perfect_difficulty_signal_recovers_the_whole_gap() -> None:
    report = run_eval(synthetic(), EvalOptions(router="cv"), estimators=STANDIN)
    cal, rnd = report.results["calibroute"], report.results["random"]
    # Perfect ranking with 40 % hard prompts: points (0, .6), (.4, 1), (1, 1) -> APGR = 1 - 0.4 / 2
    assert cal.apgr == pytest.approx(0.8, abs=0.02)
    assert rnd.apgr is not None and rnd.apgr < cal.apgr
    assert cal.cpt50 == pytest.approx(0.2, abs=0.02)
    assert cal.saved_at_95 > 0.5
    assert cal.calls_saved_at_95 is not None and cal.calls_saved_at_95 > 0.5
    assert cal.aiq > report.results["always:m0"].aiq


def test_gain_labels_count_ties_as_one_half_and_a_weak_win_as_weak_suffices() -> None:
    strong = np.array([1.0, 1.0, 0.0, 0.0, 0.8])
    weak = np.array([1.0, 0.0, 0.0, 1.0, 0.4])
    assert gain_labels(strong, weak).tolist() == pytest.approx([0.5, 0.0, 0.5, 1.0, 0.3])


def test_multi_model_data_routes_with_a_cost_weight_sweep() -> None:
    report = run_eval(synthetic(models=4), EvalOptions(), estimators=STANDIN)
    knn = report.results["knn"].curve.points
    assert len(np.unique(knn, axis=0)) >= 2  # a real trade-off, not a single point
    assert report.results["oracle"].aiq >= max(r.aiq for r in report.results.values()) - 1e-9


def test_cross_fitting_never_trains_on_a_test_prompt() -> None:
    out = synthetic(n=100)
    out = OutcomeSet(out.name, out.prompt_ids, out.prompts[:50] * 2, out.models, out.scores, out.costs, None, None, [])
    folds = make_folds(out, n_folds=5)
    for train, test in folds.pairs:
        train_texts = {out.prompts[i] for i in train}
        assert not any(out.prompts[i] in train_texts for i in folds.eval_rows[test])
    assert sorted(np.concatenate([t for _, t in folds.pairs]).tolist()) == list(range(100))


def test_dataset_split_is_used_when_present() -> None:
    out = synthetic(n=100)
    split = np.array(["train"] * 70 + ["test"] * 30)
    out = OutcomeSet(out.name, out.prompt_ids, out.prompts, out.models, out.scores, out.costs, split, None, [])
    report = run_eval(out, EvalOptions(), estimators=STANDIN)
    assert report.n_prompts == 30 and "test split" in report.folds


def test_same_strong_and_weak_is_an_input_error() -> None:
    with pytest.raises(InputError, match="different models"):
        run_eval(synthetic(), EvalOptions(strong="m0", weak="m0"), estimators=STANDIN)


def _write_long(path: Path, out: OutcomeSet) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, pid in enumerate(out.prompt_ids):
            for j, m in enumerate(out.models):
                fh.write(json.dumps({"prompt_id": pid, "prompt": out.prompts[i], "model": m,
                                     "score": out.scores[i, j], "cost_usd": out.costs[i, j]}) + "\n")
    return path


def test_cli_writes_json_plots_and_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(learners, "default_estimators", lambda: STANDIN)
    monkeypatch.setattr("calibroute.evaluate.report.default_estimators", lambda: STANDIN)
    src = _write_long(tmp_path / "toy.jsonl", synthetic())
    result = CliRunner().invoke(app, ["eval", str(src), "--out", str(tmp_path / "o"), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["n_prompts"] == 200 and data["models"] == ["m0", "m1"]
    for name in ("calibroute", "random", "oracle", "always:m0", "knn", "mf"):
        entry = data["strategies"][name]
        assert {"apgr", "cpt50", "cpt80", "aiq", "curve"} <= set(entry)
        assert all(len(p) == 2 for p in entry["curve"])
    pngs = sorted(p.name for p in (tmp_path / "o").glob("*.png"))
    assert pngs == ["toy-cost-quality.png", "toy-strong-share.png"]
    assert (tmp_path / "o" / "toy-curves.csv").read_text().startswith("strategy,kind,point")
    assert "calibroute" in result.output


def test_cli_bad_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,prompt,model,score\np,q,m,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(bad)])
    assert result.exit_code == 2
    assert "row 2, column score" in result.output and "Traceback" not in result.output


def test_cli_unknown_source_names_the_datasets() -> None:
    result = CliRunner().invoke(app, ["eval", "no-such-thing"])
    assert result.exit_code == 2 and "routellm-mmlu" in result.output


def test_pretrained_on_a_training_dataset_is_scored_on_the_estimators_held_out_prompts_only() -> None:
    data = replace(synthetic(300), name="routellm-gsm8k")
    held = hash_heldout(near_dup_keys(list(data.prompts)))
    split = shipped_estimator_split(data)
    assert split.split is not None and list(split.split == "test") == list(held)
    report = run_eval(data, EvalOptions(router="pretrained"), estimators=STANDIN)
    assert report.n_prompts == int(held.sum())
    assert any("held-out" in n for n in report.notes)


def test_cv_and_unknown_datasets_keep_every_prompt() -> None:
    data = synthetic(300)
    assert shipped_estimator_split(data) is data
    gsm = replace(data, name="routellm-gsm8k")
    assert run_eval(gsm, EvalOptions(router="cv"), estimators=STANDIN).n_prompts == 300


def test_combined_signal_is_a_rank_average_with_shared_ties() -> None:
    p = np.array([0.9, 0.1, 0.5, 0.5])
    gap = np.array([0.0, 0.4, 0.2, 0.2])  # larger gap = strong model helps more = lower P(weak suffices)
    out = combine_p_weak(p, gap)
    assert out[2] == out[3]
    assert out.argmax() == 0 and out.argmin() == 1
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_the_combined_strategy_is_reported_next_to_calibroute() -> None:
    report = run_eval(synthetic(), EvalOptions(router="cv"), estimators=STANDIN)
    both = report.results["calibroute+knn"]
    assert both.apgr is not None and both.apgr > report.results["random"].apgr  # type: ignore[operator]
