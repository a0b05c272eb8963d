"""Shoot-out graders and task sets: tolerant answer reading, the code sandbox, task files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibroute.errors import DataError, InputError
from calibroute.shootout.budgets import parse_budgets
from calibroute.shootout.graders import (
    grade,
    grade_choice,
    grade_contains,
    grade_exact,
    grade_math,
    grade_numeric,
    parse_judge_score,
    run_code_tests,
    strip_thinking,
)
from calibroute.shootout.tasks import BUILTIN, Task, load_task_file, load_tasks


@pytest.mark.parametrize("answer, reference, score", [
    ("She sells 9 eggs for $2 each.\nThe answer is $18.", "18", 1.0),
    ("So the total is 1,234 apples.", "1234", 1.0),
    ("#### 3/4", "0.75", 1.0),
    ("The answer is 18.00 dollars", "18", 1.0),
    ("Step: 5 + 7 = 12. The answer is: -3", "-3", 1.0),
    ("I have 5 apples and 7 pears, so 12 fruit", "7", 0.0),  # the last number is the answer
    ("The answer is 17", "18", 0.0),
    ("no number here", "18", 0.0),
])
def test_numeric_grader_reads_the_final_number_by_value(answer: str, reference: str, score: float) -> None:
    assert grade_numeric(answer, reference).score == score


@pytest.mark.parametrize("answer, letter", [
    ("The answer is (B).", "B"), ("B", "B"), ("**Answer: C**", "C"), ("I would pick option D.", "D"),
    ("A. is wrong because...\nThe answer is C", "C"), ("\\boxed{A}", "A"),
])
def test_choice_grader_finds_the_committed_letter(answer: str, letter: str) -> None:
    assert grade_choice(answer, letter).score == 1.0
    assert grade_choice(answer, "E").score == 0.0


def test_a_restated_option_list_is_no_answer_but_a_quoted_option_is() -> None:
    options = ["maintain the population at its midpoint", "zero population control", "increase the mortality rate", "x"]
    assert grade_choice("A. maintain\nB. zero\nC. increase\nD. x\nHard to say.", "D", options).extracted is None
    assert grade_choice("We should increase the mortality rate.", "C", options).score == 1.0
    assert grade_choice("The answer is a subtle one: (C)", "C").score == 1.0  # "is a" is not option A


def test_text_and_math_graders_normalise_before_comparing() -> None:
    assert grade_exact("The answer is: The Eiffel Tower!", "eiffel tower").score == 1.0
    assert grade_exact("Paris", "Lyon").score == 0.0
    assert grade_contains("It was Paul Benedict Cullen, a judge.", "Paul Benedict Cullen").score == 1.0
    assert grade_contains("It was Paul Cullenby.", "Paul Cullen").score == 0.0  # whole words only
    assert grade_math("so \\boxed{\\frac{1}{2}}", "$0.5$").score == 1.0
    assert grade_math("\\boxed{10 - 4n}", "$10-4 n$").score == 1.0
    assert grade_math("\\boxed{3}", "$4$").score == 0.0


def test_thinking_is_not_graded() -> None:
    assert strip_thinking("<think>maybe 3</think>The answer is 4") == "The answer is 4"
    assert strip_thinking("<think>never closed, 4") == ""
    task = Task("t", ({"role": "user", "content": "q"},), "4", "numeric", "toy")
    assert grade(task, "<think>The answer is 4</think>The answer is 5").score == 0.0


def test_code_grader_runs_the_tests_in_a_limited_subprocess() -> None:
    passing = run_code_tests("def add(a, b):\n    return a + b", ("assert add(1, 2) == 3",))
    assert passing.score == 1.0
    failing = run_code_tests("def add(a, b):\n    return a - b", ("assert add(1, 2) == 3",))
    assert failing.score == 0.0 and "AssertionError" in str(failing.extracted)
    looping = run_code_tests("def add(a, b):\n    while True: pass", ("assert add(1, 2) == 3",), timeout_s=1)
    assert looping.score == 0.0
    greedy = run_code_tests("def add(a, b):\n    return len(bytearray(4 * 1024**3))", ("assert add(1, 2) == 3",),
                            memory_mb=256)
    assert greedy.score == 0.0 and "MemoryError" in str(greedy.extracted)


def test_judge_scores_are_read_on_a_zero_to_ten_scale() -> None:
    assert parse_judge_score("Correct and complete.\nScore: 8") == 0.8
    assert parse_judge_score("score 7/10") == 0.7
    assert parse_judge_score("Score: 14") == 1.0
    assert parse_judge_score("I cannot tell") is None


def test_budget_labels_become_budgets_with_answer_room() -> None:
    off, one_k, high = parse_budgets("no-think, 1k, high", answer_tokens=300)
    assert (off.label, off.budget.thinking, off.budget.max_output_tokens, off.budget_tokens) == ("no-think", False, 300, 0.0)
    assert (one_k.budget.thinking_budget_tokens, one_k.budget.max_output_tokens) == (1024, 1324)
    assert high.budget.effort == "high" and high.budget_tokens is None
    with pytest.raises(InputError, match="not no-think"):
        parse_budgets("lots", 300)


def test_builtin_sets_carry_references_and_samples_are_stable() -> None:
    tasks = load_tasks(["gsm8k:5", "mmlu-stem:5", "mbpp:2", "simpleqa:2"], seed=3)
    assert [t.task for t in tasks] == ["gsm8k"] * 5 + ["mmlu-stem"] * 5 + ["mbpp"] * 2 + ["simpleqa"] * 2
    assert all(t.reference for t in tasks)
    assert all(t.reference in "ABCDEFGHIJ" for t in tasks if t.task == "mmlu-stem")
    assert all(t.tests for t in tasks if t.grader == "code")
    assert [t.id for t in load_tasks(["gsm8k:5"], seed=3)] == [t.id for t in tasks[:5]]
    assert {t.grader for t in load_tasks(["simpleqa:2"], judge=True)} == {"judge"}
    assert set(BUILTIN) >= {"gsm8k", "mmlu-stem", "mbpp", "simpleqa", "frames", "svamp", "aqua"}


def test_mbpp_reference_solutions_pass_their_own_tests() -> None:
    for task in load_tasks(["mbpp:3"], seed=1):
        assert grade(task, f"```python\n{task.reference}\n```").score == 1.0, task.id


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_task_file_rows_pick_a_grader_from_their_reference(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine.jsonl", [
        {"id": "a", "prompt": "2+2?", "reference": "4"},
        {"id": "b", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "pick"}],
         "reference": "C"},
        {"id": "c", "prompt": "capital of France?", "reference": "Paris", "task": "geo"},
        {"id": "d", "prompt": "write add", "reference": "def add(a,b): return a+b", "grader": "code",
         "tests": ["assert add(1, 2) == 3"]},
    ])
    tasks = load_task_file(path)
    assert [t.grader for t in tasks] == ["numeric", "choice", "exact", "code"]
    assert tasks[1].prompt == "pick" and tasks[2].task == "geo" and tasks[0].task == "mine"


def test_a_task_file_without_a_reference_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,prompt\na,2+2?\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing column\(s\) reference"):
        load_task_file(path)


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "prompt": "2+2?"}], "row 1, column reference: empty"),
    ([{"id": "a", "prompt": "2+2?", "reference": ""}], "row 1, column reference: empty"),
    ([{"id": "a", "reference": "4"}], "row 1: needs a prompt or messages"),
    ([{"id": "a", "prompt": "x", "reference": "4", "grader": "vibes"}], "column grader"),
    ([{"id": "a", "prompt": "x", "reference": "4"}, {"id": "a", "prompt": "y", "reference": "5"}], "duplicate 'a'"),
    ([{"id": "a", "prompt": "x", "reference": "f", "grader": "code"}], "needs unit tests"),
])
def test_bad_task_rows_name_the_row_and_column(tmp_path: Path, rows: list[dict], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_task_file(_write(tmp_path / "bad.jsonl", rows))


def test_unknown_task_set_names_the_built_in_ones() -> None:
    with pytest.raises(InputError, match="gsm8k"):
        load_tasks(["gsm9k"])
    with pytest.raises(InputError, match="does not exist"):
        load_tasks(["nowhere.jsonl"])
