"""Budget calibration: bootstrap picks on synthetic data with a known answer, loaders, CLI, emitted config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from calibroute.budgets.budget_files import load_budget_data, load_budget_file
from calibroute.budgets.calibrate import CalibrationSettings, calibrate_ladder, flips
from calibroute.budgets.emit import emit_config, setting_budget
from calibroute.budgets.ladder import Ladder
from calibroute.cli import app
from calibroute.config import RouteSpec, load_portfolio, parse_portfolio
from calibroute.errors import DataError, InputError

FAST = CalibrationSettings(resamples=400, seed=1)
PICK_KEYS = {"model", "benchmark", "setting", "accuracy", "best_setting", "best_accuracy", "tokens_saved_pct", "inverse_scaling"}


def ladder_of(accuracies: list[float], n: int = 400, seed: int = 0, budgets: tuple[float | None, ...] | None = None) -> Ladder:
    """Independent Bernoulli items per setting with the given accuracies; tokens double per setting."""
    rng = np.random.default_rng(seed)
    s = len(accuracies)
    scores = np.array([(rng.random(n) < a).astype(float) for a in accuracies])
    tokens = np.array([np.full(n, 100.0 * 2**i) for i in range(s)])
    return Ladder(
        model="m",
        benchmark="b",
        task=None,
        settings=tuple(f"s{i}" for i in range(s)),
        budget_tokens=budgets or tuple(float(256 * 2**i) for i in range(s)),
        item_ids=tuple(str(i) for i in range(n)),
        scores=scores,
        tokens=tokens,
    )


def write_generic(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def generic_rows(accuracy: dict[str, float], n: int = 60, benchmark: str = "bench") -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k, (setting, acc) in enumerate(accuracy.items()):
        for i in range(n):
            rows.append(
                {"item_id": f"q{i}", "model": "m1", "setting": setting, "budget_tokens": 512 * 2**k,
                 "tokens_used": 300 * 2**k + i, "score": float(i < acc * n), "benchmark": benchmark}
            )
    return rows


def test_flat_accuracy_picks_the_smallest_setting() -> None:
    pick = calibrate_ladder(ladder_of([0.6, 0.6, 0.6, 0.6]), FAST)
    assert pick.setting == "s0"
    assert pick.tokens_saved_pct > 0 or pick.best_setting == "s0"
    assert not pick.inverse_scaling


def test_a_real_accuracy_drop_is_not_picked() -> None:
    pick = calibrate_ladder(ladder_of([0.3, 0.8, 0.8]), FAST)
    assert pick.setting == "s1"
    assert pick.settings[0].gap_to_best_low > 0


def test_tolerance_admits_a_cheaper_setting_within_it() -> None:
    ladder = ladder_of([0.55, 0.6], n=2000, seed=3)
    assert calibrate_ladder(ladder, FAST).setting == "s1"
    assert calibrate_ladder(ladder, CalibrationSettings(resamples=400, seed=1, tolerance=0.1)).setting == "s0"


def test_equivalent_rule_is_stricter_than_indistinguishable_on_small_data() -> None:
    ladder = ladder_of([0.5, 0.55], n=40, seed=2)
    loose = calibrate_ladder(ladder, CalibrationSettings(resamples=400, seed=1))
    strict = calibrate_ladder(ladder, CalibrationSettings(resamples=400, seed=1, rule="equivalent", tolerance=0.01))
    assert (loose.setting, strict.setting) == ("s0", "s1")


def test_inverse_scaling_is_flagged_when_the_largest_budget_is_significantly_worse() -> None:
    falling = calibrate_ladder(ladder_of([0.5, 0.8, 0.5]), FAST)
    rising = calibrate_ladder(ladder_of([0.5, 0.6, 0.8]), FAST)
    assert falling.inverse_scaling and falling.drop_ci[0] > 0
    assert not rising.inverse_scaling


def test_same_seed_gives_identical_picks_and_intervals() -> None:
    ladder = ladder_of([0.5, 0.53, 0.55, 0.54], n=300, seed=5)
    assert calibrate_ladder(ladder, FAST) == calibrate_ladder(ladder, FAST)


def test_flips_count_items_lost_and_gained() -> None:
    scores = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=float)
    ladder = Ladder("m", "b", None, ("lo", "hi"), (0, 1024), ("a", "b", "c", "d"), scores, np.ones_like(scores),
                    grades=np.array([["A", "A", "B", "C"], ["A", "C", "A", "B"]]))
    (flip,) = flips(ladder)
    assert (flip.lost, flip.gained, flip.lost_to_abstain, flip.lost_to_incorrect, flip.net) == (1, 1, 1, 0, 0)


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_generic_loader_reads_every_format_and_pairs_items(tmp_path: Path, ext: str) -> None:
    rows = generic_rows({"low": 0.5, "high": 0.5}, n=10)
    rows.append({**rows[0], "item_id": "only-low"})
    path = tmp_path / f"runs.{ext}"
    if ext == "jsonl":
        write_generic(path, rows)
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows)
        pacsv.write_csv(table, path) if ext == "csv" else pq.write_table(table, path)
    (ladder,) = load_budget_file(path)
    assert ladder.settings == ("low", "high") and ladder.n_items == 10
    assert ladder.budget_tokens == (512.0, 1024.0)
    assert any("dropped" in note for note in ladder.notes)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"score": 1.5}, "row 2, column score: 1.5 is not 0..1"),
        ({"tokens_used": "many"}, "row 2, column tokens_used: expected a number, got 'many'"),
        ({"model": ""}, "row 2, column model: empty"),
        ({"item_id": "q0"}, "row 2: duplicate item 'q0'"),
    ],
)
def test_malformed_generic_rows_name_file_row_and_column(tmp_path: Path, bad: dict[str, object], message: str) -> None:
    rows = generic_rows({"low": 0.5}, n=3)
    rows[1] = {**rows[1], **bad}
    path = write_generic(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_budget_file(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_columns_and_unknown_formats_are_data_errors(tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("item_id,model,score\nq,m,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column.*setting.*tokens_used"):
        load_budget_file(csv_path)
    txt = tmp_path / "x.txt"
    txt.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown format \.txt"):
        load_budget_data(txt)
    with pytest.raises(DataError, match="not a tts_knowledge_budgets folder"):
        load_budget_data(tmp_path)


def test_setting_budgets_translate_names_and_numbers() -> None:
    ladder = ladder_of([0.5, 0.5, 0.5], n=50, budgets=(0.0, 1024.0, None))
    ladder = Ladder(**{**ladder.__dict__, "settings": ("no_think", "budget1024", "high_effort")})
    off, think, effort = (setting_budget(ladder, i) for i in range(3))
    assert not off.thinking
    assert think.thinking_budget_tokens == 1024 and think.max_output_tokens > 1024
    assert effort.effort == "high" and effort.thinking


def test_emitted_config_validates_and_merges_into_a_portfolio(tmp_path: Path) -> None:
    ladders = [ladder_of([0.5, 0.5, 0.5]), Ladder(**{**ladder_of([0.2, 0.6]).__dict__, "benchmark": "math", "model": "m2"})]
    picks = [calibrate_ladder(lad, FAST) for lad in ladders]
    fragment = yaml.safe_load(emit_config(picks, ladders, {"math": "REASONING"}))
    assert set(fragment["routes"]) == {"GENERAL", "REASONING"}
    for spec in fragment["routes"].values():
        RouteSpec.model_validate(spec)
    portfolio = load_portfolio(None).model_dump(mode="json", exclude_none=True)
    for cls, spec in fragment["routes"].items():
        portfolio["routes"][cls]["budget"] = spec["budget"]
    merged = parse_portfolio(yaml.safe_dump(portfolio), "merged")
    assert merged.routes["REASONING"].budget.thinking_budget_tokens == 512


def test_cli_writes_json_curves_flips_and_config(tmp_path: Path) -> None:
    data = write_generic(tmp_path / "runs.jsonl", generic_rows({"low": 0.5, "mid": 0.52, "high": 0.5}, n=80))
    out, js, cfg = tmp_path / "out", tmp_path / "picks.json", tmp_path / "routes.yaml"
    result = CliRunner().invoke(
        app, ["calibrate", "budgets", str(data), "--json", str(js), "--out", str(out), "--emit-config", str(cfg), "--resamples", "300"]
    )
    assert result.exit_code == 0, result.output
    picks = json.loads(js.read_text())["picks"]
    assert len(picks) == 1 and PICK_KEYS <= set(picks[0]) and isinstance(picks[0]["inverse_scaling"], bool)
    assert picks[0]["setting"] == "low"
    assert (out / "curve_m1_bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "low,mid" in (out / "flips.csv").read_text()
    RouteSpec.model_validate(yaml.safe_load(cfg.read_text())["routes"]["GENERAL"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tolerance", "2"], "error: tolerance must be in [0, 1)"),
        (["--class", "oops"], "error: --class expects BENCHMARK=CLASS"),
        (["--model", "nope"], "error: no data for model(s) nope"),
    ],
)
def test_cli_bad_options_end_in_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    data = write_generic(tmp_path / "runs.jsonl", generic_rows({"low": 0.5}, n=5))
    result = CliRunner().invoke(app, ["calibrate", "budgets", str(data), *args])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(message)


def test_cli_bad_data_ends_in_one_error_line(tmp_path: Path) -> None:
    data = tmp_path / "runs.jsonl"
    data.write_text('{"item_id": "q", "model": "m", "setting": "s", "tokens_used": 5, "score": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["calibrate", "budgets", str(data)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {data}: row 1, column score: expected a number, got 'x'"


def _tts_root() -> Path:
    try:
        from calibroute.datasets import data_root

        root = data_root() / "tts_knowledge_budgets"
    except DataError as exc:
        pytest.skip(f"shared data missing: {exc}")
    if not root.is_dir():
        pytest.skip(f"shared data missing: {root}")
    return root


def test_tts_folder_loads_every_ladder_with_grades_and_questions() -> None:
    ladders = {(lad.model, lad.benchmark): lad for lad in load_budget_data(_tts_root())}
    assert len(ladders) == 12
    claude = ladders["claude-sonnet-4", "FRAMES"]
    assert claude.settings == ("no_think", "budget1024", "budget2048", "budget4096") and claude.n_items == 824
    assert np.round(claude.accuracy(), 3).tolist() == [0.504, 0.528, 0.522, 0.546]
    assert claude.grades is not None and claude.texts is not None
    o4 = ladders["o4-mini", "FRAMES"]
    assert o4.n_items == 820 and any("negative token count" in n for n in o4.notes)
    (lowest_to_highest,) = [f for f in flips(ladders["o4-mini", "SimpleQA"]) if f.from_setting == "low_effort" and f.to_setting == "high_effort"]
    assert (lowest_to_highest.lost, lowest_to_highest.gained) == (42, 42)  # SOURCE.md's own table


def test_too_few_resamples_is_an_input_error() -> None:
    with pytest.raises(InputError, match="resamples"):
        CalibrationSettings(resamples=10)
