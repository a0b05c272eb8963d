"""``calibroute shootout`` against real HTTP servers on 127.0.0.1 (tests/fake_backend.py).

Covers the run itself (grading, budgets, tokens, dollars), the outcomes round trip into
``eval`` and ``calibrate budgets``, retries, failed calls, the spend cap, bad input, and
resume after ``kill -9`` (counting the calls each fake server received).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backend import FakeModel, dead_url, serve_models
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.outcomes import load_outcomes_file

SRC = Path(__file__).resolve().parents[1] / "src"
N_TASKS = 12


def write_portfolio(path: Path, models: dict[str, tuple[str, str]]) -> Path:
    """Portfolio of the given models: name -> (server URL, reasoning control); model i costs (i+1, 2(i+1)) $/Mtok."""
    lines = ["models:"]
    for i, (name, (url, control)) in enumerate(models.items()):
        lines.append(f"  - {{name: {name}, backend: {{base_url: '{url}/v1', connect_timeout_s: 2, read_timeout_s: 5, "
                     f"total_timeout_s: 10}}, input_usd_per_mtok: {i + 1}, output_usd_per_mtok: {2 * (i + 1)}, "
                     f"reasoning: {control}}}")
    first = next(iter(models))
    lines.append("routes:")
    for cls in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"):
        lines.append(f"  {cls}: {{models: [{first}], budget: {{max_output_tokens: 64}}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tasks(path: Path, n: int = N_TASKS, **extra: str) -> Path:
    """Numeric tasks; even ones have reference 42 (the 'strong' fake's answer), odd ones 7 (the 'weak' one's)."""
    rows = [{"id": f"q{i}", "prompt": f"Question {i}: what number is it?", "reference": "42" if i % 2 == 0 else "7",
             "task": "toy"} | extra for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def fakes() -> Iterator[tuple[dict[str, FakeModel], dict[str, str]]]:
    models = {"strong": FakeModel(name="strong", reply="So the answer is 42."),
              "weak": FakeModel(name="weak", reply="The answer is 7."),
              "thinker": FakeModel(name="thinker", think_words=6),
              "judge": FakeModel(name="judge", reply="Matches the reference.\nScore: 8")}
    with serve_models(*models.values()) as urls:
        yield models, urls


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["shootout", *args])
    return result.exit_code, result.output


def shootout_args(tmp_path: Path, urls: dict[str, str], models: str, *extra: str,
                  controls: dict[str, str] | None = None) -> list[str]:
    controls = controls or {}
    config = write_portfolio(tmp_path / "portfolio.yaml", {n: (u, controls.get(n, "none")) for n, u in urls.items()})
    return [str(tmp_path / "tasks.jsonl"), "--config", str(config), "--models", models, "--out", str(tmp_path / "out.jsonl"),
            "--backoff", "0.01", "--max-tokens", "64", *extra]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def test_a_run_grades_every_call_and_its_outcomes_feed_eval_and_calibrate(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl")
    code, output = run_cli(*shootout_args(tmp_path, urls, "strong,weak", "--budgets", "no-think,1k"))
    assert code == 0, output
    rows = rows_of(tmp_path / "out.jsonl")
    assert len(rows) == N_TASKS * 2 * 2
    by = {(r["model"], r["budget"]): [x["score"] for x in rows if (x["model"], x["budget"]) == (r["model"], r["budget"])]
          for r in rows}
    assert all(sum(scores) == N_TASKS / 2 for scores in by.values())  # each fake is right on half the items
    assert all(r["cost_usd"] > 0 and r["input_tokens"] > 0 and r["output_tokens"] > 0 and r["latency_s"] > 0 for r in rows)
    assert {r["budget_tokens"] for r in rows} == {0.0, 1024.0}
    # the budget became the request's max_tokens: answer room alone, or thinking budget + answer room
    assert sorted({b["max_tokens"] for b in models["strong"].requests}) == [64, 1024 + 64]
    assert len(models["strong"].requests) == len(models["weak"].requests) == N_TASKS * 2
    assert (tmp_path / "out.png").stat().st_size > 0

    data = load_outcomes_file(tmp_path / "out.jsonl")
    assert sorted(data.models) == ["strong@1k", "strong@no-think", "weak@1k", "weak@no-think"]
    assert data.n_prompts == N_TASKS
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "out.jsonl"), "--router", "pretrained",
                                      "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval.json").read_text())["n_prompts"] == N_TASKS
    result = CliRunner().invoke(app, ["calibrate", "budgets", str(tmp_path / "out.jsonl"), "--resamples", "200",
                                      "--json", str(tmp_path / "picks.json")])
    assert result.exit_code == 0, result.output
    picks = json.loads((tmp_path / "picks.json").read_text())["picks"]
    assert {p["model"] for p in picks} == {"strong", "weak"}
    assert all(p["setting"] in ("no-think", "1k") for p in picks)


def test_a_think_tag_model_gets_its_budget_forced_and_its_thinking_is_not_graded(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=2)
    args = shootout_args(tmp_path, urls, "thinker", "--budgets", "no-think,1k", controls={"thinker": "think_tags"})
    code, output = run_cli(*args)
    assert code == 0, output
    rows = {(r["prompt_id"], r["budget"]): r for r in rows_of(tmp_path / "out.jsonl")}
    assert rows["q0", "1k"]["score"] == 1.0 and rows["q0", "no-think"]["score"] == 1.0  # "The answer is 42."
    assert rows["q0", "1k"]["reasoning_tokens"] > 0 and not rows["q0", "no-think"].get("reasoning_tokens")
    prefilled = [b for b in models["thinker"].requests if b["messages"][-1]["role"] == "assistant"]
    assert len(prefilled) == 2  # no-think: an empty think block prefilled, as the gateway does


def test_retryable_failures_are_retried_with_backoff_and_a_4xx_is_not(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=1)
    models["strong"].fail_times, models["strong"].fail_status, models["strong"].retry_after = 2, 429, "0"
    code, output = run_cli(*shootout_args(tmp_path, urls, "strong", "--retries", "3"))
    assert code == 0, output
    (row,) = rows_of(tmp_path / "out.jsonl")
    assert row["score"] == 1.0 and row["attempts"] == 3 and "error" not in row
    assert len(models["strong"].requests) == 3

    models["weak"].fail_times, models["weak"].fail_status = 1, 400
    code, output = run_cli(*shootout_args(tmp_path, urls, "weak", "--retries", "3", "--out", str(tmp_path / "w.jsonl")))
    assert code == 0, output
    (row,) = rows_of(tmp_path / "w.jsonl")
    assert row["score"] == 0.0 and "HTTP 400" in row["error"] and len(models["weak"].requests) == 1


def test_a_failed_call_is_recorded_as_failed_and_retried_on_resume(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=4)
    models["strong"].fail_times, models["strong"].fail_status = 2, 503
    args = shootout_args(tmp_path, urls, "strong", "--retries", "0", "--concurrency", "1", "--abort-after", "10")
    code, output = run_cli(*args)
    assert code == 0, output
    rows = rows_of(tmp_path / "out.jsonl")
    assert len(rows) == 4  # the failed calls are rows too, never dropped
    failed = [r for r in rows if r.get("error")]
    assert len(failed) == 2 and all(r["score"] == 0.0 and "HTTP 503" in r["error"] for r in failed)
    assert "2 failed" in output
    code, output = run_cli(*args)  # resume: only the two failed calls are asked again
    assert code == 0, output
    assert len(models["strong"].requests) == 4 + 2
    assert all("error" not in r for r in rows_of(tmp_path / "out.jsonl"))


def test_the_judge_grades_with_its_own_cost_kept_apart(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=3, grader="judge", rubric="states a number")
    code, output = run_cli(*shootout_args(tmp_path, urls, "weak", "--judge", "judge"))
    assert code == 0, output
    rows = rows_of(tmp_path / "out.jsonl")
    assert [r["score"] for r in rows] == [0.8, 0.8, 0.8]
    assert all(r["judge_model"] == "judge" and r["judge_cost_usd"] > 0 for r in rows)
    judge_prompt = models["judge"].requests[0]["messages"][-1]["content"]
    assert "The answer is 7." in judge_prompt and "states a number" in judge_prompt
    code, output = run_cli(*shootout_args(tmp_path, urls, "weak", "--out", str(tmp_path / "nojudge.jsonl")))
    assert code == 2 and "--judge" in output


def test_the_spend_cap_stops_cleanly_and_a_higher_cap_continues_without_paying_twice(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl")
    cap = 0.00025  # a few calls: each costs ~$0.00002 but reserves its worst case (~$0.00018) against the cap
    args = shootout_args(tmp_path, urls, "strong", "--concurrency", "1", "--summary-json", str(tmp_path / "s.json"))
    code, output = run_cli(*args, "--max-usd", str(cap))
    assert code == 0, output
    assert "spend cap" in output
    first = rows_of(tmp_path / "out.jsonl")
    assert 0 < len(first) < N_TASKS
    assert sum(r["cost_usd"] for r in first) <= cap
    assert len(models["strong"].requests) == len(first)
    code, output = run_cli(*args, "--max-usd", "1")
    assert code == 0, output
    assert len(rows_of(tmp_path / "out.jsonl")) == N_TASKS
    assert len(models["strong"].requests) == N_TASKS  # the first run's calls were not made again


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, fakes) -> None:
    _, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=2)
    code, output = run_cli(*shootout_args(tmp_path, urls, "strong,nope"))
    assert code == 2 and output.strip().splitlines() == ["error: unknown model 'nope'; known: judge, strong, thinker, weak"]
    (tmp_path / "noref.csv").write_text("id,prompt\na,2+2?\n", encoding="utf-8")
    args = shootout_args(tmp_path, urls, "strong")
    args[0] = str(tmp_path / "noref.csv")
    code, output = run_cli(*args)
    assert code == 2 and "missing column(s) reference" in output and len(output.strip().splitlines()) == 1


def test_an_unreachable_backend_stops_the_run_and_keeps_what_finished(tmp_path, fakes) -> None:
    _, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=6)
    urls = {"strong": urls["strong"], "gone": dead_url()}
    code, output = run_cli(*shootout_args(tmp_path, urls, "strong,gone", "--retries", "1", "--abort-after", "3"))
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model gone: 3 calls in a row failed" in errors[0] and "cannot connect" in errors[0]
    rows = rows_of(tmp_path / "out.jsonl")
    assert any(r["model"] == "strong" and r["score"] == 1.0 for r in rows)
    assert all("cannot connect" in r["error"] for r in rows if r["model"] == "gone")


def _journal_calls(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.endswith("}")
            and json.loads(line)["kind"] == "call"]


def test_a_run_killed_with_sigkill_resumes_without_repeating_a_finished_call(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl")
    models["strong"].delay_s = 0.15  # slow enough to be killed mid-run
    args = shootout_args(tmp_path, urls, "strong", "--concurrency", "2")
    journal = tmp_path / "out.jsonl.journal.jsonl"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", "from calibroute.cli import main; main()", "shootout", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(_journal_calls(journal)) < 4:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before the kill"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = {c["task_id"] for c in _journal_calls(journal)}
    asked_before = len(models["strong"].requests)
    assert 4 <= len(finished) < N_TASKS
    models["strong"].delay_s = 0.0
    code, output = run_cli(*args)
    assert code == 0, output
    rows = rows_of(tmp_path / "out.jsonl")
    assert sorted(r["prompt_id"] for r in rows) == sorted(f"q{i}" for i in range(N_TASKS))
    asked = [b["messages"][-1]["content"].split(":")[0] for b in models["strong"].requests]
    for task_id in finished:  # every call finished before the kill was asked exactly once
        assert asked.count(f"Question {task_id[1:]}") == 1, task_id
    assert len(models["strong"].requests) - asked_before == N_TASKS - len(finished)


def test_a_call_journaled_but_not_graded_is_graded_on_resume_without_a_second_call(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=2)
    args = shootout_args(tmp_path, urls, "strong")
    assert run_cli(*args)[0] == 0
    journal = tmp_path / "out.jsonl.journal.jsonl"
    calls = [line for line in journal.read_text("utf-8").splitlines() if json.loads(line)["kind"] == "call"]
    journal.write_text("\n".join(calls) + "\n" + '{"kind": "grade", "key": "torn', encoding="utf-8")  # killed mid-grade
    code, output = run_cli(*args)
    assert code == 0, output
    assert "torn last line" in output
    assert len(models["strong"].requests) == 2
    assert [r["score"] for r in rows_of(tmp_path / "out.jsonl")] == [1.0, 0.0]


def test_regrade_grades_the_journaled_answers_again_without_calling(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl", n=3)
    args = shootout_args(tmp_path, urls, "strong")
    assert run_cli(*args)[0] == 0
    assert [r["score"] for r in rows_of(tmp_path / "out.jsonl")] == [1.0, 0.0, 1.0]
    # the same prompts, a corrected reference and another grader: graded again, not asked again
    write_tasks(tmp_path / "tasks.jsonl", n=3, grader="contains", reference="So the answer is 42")
    code, output = run_cli(*args, "--regrade")
    assert code == 0, output
    assert len(models["strong"].requests) == 3
    rows = rows_of(tmp_path / "out.jsonl")
    assert [r["score"] for r in rows] == [1.0, 1.0, 1.0] and {r["grader"] for r in rows} == {"contains"}


def test_one_journal_serves_one_run_at_a_time(tmp_path) -> None:
    from calibroute.errors import InputError
    from calibroute.shootout.store import Journal

    with Journal(tmp_path / "j.jsonl"), pytest.raises(InputError, match="in use by another shoot-out"):
        Journal(tmp_path / "j.jsonl")
    Journal(tmp_path / "j.jsonl").close()


def test_ctrl_c_writes_the_finished_outcomes_and_exits_130(tmp_path, fakes) -> None:
    models, urls = fakes
    write_tasks(tmp_path / "tasks.jsonl")
    models["strong"].delay_s = 0.5  # 10 calls still to go when the signal is sent: the run cannot finish first under load
    args = shootout_args(tmp_path, urls, "strong", "--concurrency", "1")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", "from calibroute.cli import main; main()", "shootout", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_journal_calls(tmp_path / "out.jsonl.journal.jsonl")) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    finished = {c["task_id"] for c in _journal_calls(tmp_path / "out.jsonl.journal.jsonl")}
    written = {r["prompt_id"] for r in rows_of(tmp_path / "out.jsonl")}
    assert written and written <= finished and len(written) >= len(finished) - 1  # at most one was being graded
