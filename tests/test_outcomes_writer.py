"""The outcomes writer: what it writes, ``eval``'s loader and ``calibrate budgets``' loader read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibroute.budgets.budget_files import load_budget_data
from calibroute.errors import DataError
from calibroute.outcomes import OutcomeRow, load_outcomes_file, write_outcomes


def shootout_rows() -> list[OutcomeRow]:
    """Two models, one at two budgets, six prompts; model b fails on odd prompts."""
    rows = []
    for i in range(6):
        prompt = f"What is {i} + {i}?"
        for model, budget, score, tokens in (("a", "no-think", 1.0, 10), ("a", "1k", 1.0, 300), ("b", None, i % 2 == 0, 5)):
            rows.append(OutcomeRow(prompt_id=f"q{i}", prompt=prompt, model=model, budget=budget, score=float(score),
                                   cost_usd=tokens * 1e-6, input_tokens=8, output_tokens=tokens, latency_s=0.5,
                                   task="gsm8k", extra={"grader": "numeric"}))
    return rows


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_written_outcomes_read_back_as_an_outcome_set(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"out.{ext}"
    assert write_outcomes(shootout_rows(), path) == 18
    data = load_outcomes_file(path)
    assert data.models == ["a@no-think", "a@1k", "b"]
    assert data.n_prompts == 6 and data.tasks == ["gsm8k"] * 6
    np.testing.assert_allclose(data.scores[:, 2], [1, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(data.costs[:, 1], 300e-6)


def test_written_outcomes_read_back_as_budget_ladders(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_outcomes([r for r in shootout_rows() if r.budget], path)
    (ladder,) = load_budget_data(path)
    assert ladder.model == "a" and ladder.settings == ("no-think", "1k")
    assert ladder.budget_tokens == (0.0, 1024.0) and ladder.n_items == 6
    np.testing.assert_allclose(ladder.mean_tokens(), [10, 300])


def test_budget_loader_names_the_outcomes_column_that_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_outcomes([r for r in shootout_rows() if r.model == "b"], path)
    with pytest.raises(DataError, match=r"row 1: missing column\(s\) budget"):
        load_budget_data(path)


def test_append_adds_rows_and_a_bad_row_writes_nothing(tmp_path: Path) -> None:
    rows = shootout_rows()
    for ext in ("jsonl", "csv"):
        path = tmp_path / f"run.{ext}"
        write_outcomes(rows[:9], path, append=True)
        write_outcomes(rows[9:], path, append=True)
        assert load_outcomes_file(path).n_prompts == 6
        before = path.read_bytes()
        with pytest.raises(DataError, match="outcome row 2: score must be a number in 0..1"):
            write_outcomes([rows[0], {**rows[1].record(), "score": 1.5}], path, append=True)
        assert path.read_bytes() == before
    with pytest.raises(DataError, match="missing prompt"):
        write_outcomes([{"prompt_id": "x", "model": "m", "score": 1}], tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="cannot append to Parquet"):
        write_outcomes(rows, tmp_path / "x.parquet", append=True)
