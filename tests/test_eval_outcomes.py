"""The outcome data model and its loaders: generic long format and the shared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibroute.errors import DataError
from calibroute.outcomes import DATASETS, load_dataset, load_outcomes_file


@pytest.fixture
def shared_data() -> Path:
    from calibroute.datasets import data_root

    try:
        return data_root()
    except DataError:
        pytest.skip("shared data (../shared/data) not present")


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_long_csv_pivots_to_prompts_by_models(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "o.csv", [
        "prompt_id,prompt,model,score,cost_usd,task",
        "p1,What is 2+2?,big,1,0.01,math",
        "p1,What is 2+2?,small,0,0.001,math",
        "p2,Name a colour.,small,1,0.001,trivia",
        "p2,Name a colour.,big,1,0.01,trivia",
    ])
    out = load_outcomes_file(path)
    assert out.prompt_ids == ["p1", "p2"] and out.models == ["big", "small"]
    np.testing.assert_array_equal(out.scores, [[1, 0], [1, 1]])
    np.testing.assert_allclose(out.costs, [[0.01, 0.001], [0.01, 0.001]])
    assert out.tasks == ["math", "trivia"] and out.split is None


def test_missing_costs_come_from_prices_and_counted_tokens(tmp_path: Path) -> None:
    rows = [{"prompt_id": "a", "prompt": "hello world " * 10, "model": m, "score": 1.0} for m in ("x", "y")]
    path = tmp_path / "o.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = load_outcomes_file(path, prices={"x": (1.0, 2.0), "y": (10.0, 20.0)})
    assert out.costs[0, 0] > 0
    assert out.costs[0, 1] == pytest.approx(10 * out.costs[0, 0])
    assert any("tokenizer" in n for n in out.notes)


def test_parquet_is_read_by_extension(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"prompt_id": ["a", "a"], "prompt": ["q", "q"], "model": ["m1", "m2"],
                      "score": [0.5, 1.0], "input_tokens": [10, 10], "output_tokens": [5, 5]})
    pq.write_table(table, tmp_path / "o.parquet")
    out = load_outcomes_file(tmp_path / "o.parquet", prices={"m1": (1e6, 0.0), "m2": (0.0, 1e6)})
    np.testing.assert_allclose(out.costs, [[10.0, 5.0]])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("p1,q,m,1.5,", "row 3, column score: 1.5 outside 0..1"),
        ("p1,q,m,abc,", "row 3, column score: expected a number"),
        ("p1,,m,1,", "row 3, column prompt: empty"),
        ("p1,q,m,1,-2", "row 3, column cost_usd: -2 outside 0"),
        ("p0,q,m,1,", "row 3: duplicate prompt_id 'p0' for model 'm' (first at row 2)"),
    ],
)
def test_malformed_rows_name_file_row_and_column(tmp_path: Path, line: str, expected: str) -> None:
    path = _write_csv(tmp_path / "bad.csv", ["prompt_id,prompt,model,score,cost_usd", "p0,q,m,1,", line])
    with pytest.raises(DataError) as err:
        load_outcomes_file(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "bad.csv", ["prompt_id,prompt,model", "p,q,m"])
    with pytest.raises(DataError, match="missing column\\(s\\) score"):
        load_outcomes_file(path)


def test_unknown_extension_and_bad_json_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "o.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unknown format"):
        load_outcomes_file(tmp_path / "o.txt")
    (tmp_path / "o.jsonl").write_text('{"prompt_id": "a", "prompt": "q", "model": "m", "score": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="row 2: invalid JSON"):
        load_outcomes_file(tmp_path / "o.jsonl")


def test_subset_and_complete_keep_rows_aligned(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "o.csv", [
        "prompt_id,prompt,model,score,cost_usd",
        "a,qa,m1,1,1", "a,qa,m2,0,2", "b,qb,m1,0,1", "c,qc,m1,1,1", "c,qc,m2,1,2",
    ])
    out = load_outcomes_file(path).complete()
    assert out.prompt_ids == ["a", "c"]
    assert "dropped 1 of 3 prompts: no score (no row) for m2 on 1" in out.notes[-1]
    assert out.subset(np.array([1])).prompts == ["qc"]


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DataError, match="routellm-mmlu"):
        load_dataset("nope")


@pytest.mark.parametrize(("name", "n", "m"), [
    ("routellm-gsm8k", 1307, 2), ("routerbench", 3178, 11), ("dcrouter", 5989, 9), ("routerarena", 809, 2),
])
def test_shared_datasets_load_with_costs(shared_data: Path, name: str, n: int, m: int) -> None:
    out = load_dataset(name, shared_data)
    assert (out.n_prompts, len(out.models)) == (n, m)
    complete = out.complete()
    assert np.all(complete.costs > 0) and np.all((complete.scores >= 0) & (complete.scores <= 1))
    assert name in DATASETS


def test_routellm_gsm8k_matches_published_accuracy(shared_data: Path) -> None:
    out = load_dataset("routellm-gsm8k", shared_data)
    # SOURCE.md: GPT-4 85.67 %, Mixtral 63.84 % on all 1,319; 12 contaminated prompts dropped.
    assert out.scores.mean(axis=0) == pytest.approx([0.858, 0.637], abs=0.005)
