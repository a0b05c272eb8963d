"""``calibroute shootout``: run a task set through the portfolio's models, live, and write outcomes.

Every finished call is journaled (fsynced) as it lands, so Ctrl-C, a crash or kill -9 loses
nothing paid for: the same command resumes. Whatever stops the run (done, spend cap, Ctrl-C,
a failing backend), the outcomes of every finished call are written to ``--out`` in the long
format ``calibroute eval`` and ``calibroute calibrate budgets`` read.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import load_portfolio, portfolio_from_env
from ..errors import CalibrouteError, InputError
from ..shootout.budgets import parse_budgets
from ..shootout.report import summarise, table, to_json, write_plot
from ..shootout.runner import RunResult, RunSettings, Shootout
from ..shootout.store import CallRecord, Journal
from ..shootout.tasks import BUILTIN, load_tasks

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


class _Live:
    """Progress-bar state: calls done, running accuracy, spend."""

    def __init__(self, progress: Progress, task_id: object) -> None:
        self.progress, self.task_id = progress, task_id
        self.done = 0
        self.score = 0.0
        self.failed = 0
        self.spent: Callable[[], float] = lambda: 0.0  # the run's spend so far, earlier sessions included

    def __call__(self, rec: CallRecord) -> None:
        self.done += 1
        self.score += (rec.score or 0.0) if rec.status == "ok" else 0.0
        self.failed += rec.status != "ok"
        acc = self.score / self.done
        self.progress.update(self.task_id, advance=1,  # type: ignore[arg-type]
                             stats=f"acc {acc:.3f}  ${self.spent():.4f}  failed {self.failed}")


def _finish(journal: Journal, keys: list[str], out: Path | None, plot: Path | None, summary_json: Path | None) -> list[CallRecord]:
    """Write outcomes, summary and plot for every finished call of this run's plan."""
    from ..outcomes import write_outcomes
    from ..shootout.report import outcome_rows

    # a call journaled but not yet graded (interrupted in between) is graded on resume, not written as a 0
    records = [r for k in keys if (r := journal.records.get(k)) is not None and (r.graded or r.status != "ok")]
    if not records:
        return records
    rows = summarise(records)
    console.print(table(rows, title=f"shoot-out: {len(records)} of {len(keys)} calls (* = on the cost-accuracy Pareto front)"))
    if out is not None:
        tmp = out.with_name(out.name + ".tmp" + out.suffix)
        write_outcomes(outcome_rows(records), tmp)
        tmp.replace(out)
        console.print(f"wrote {out} ({len(records)} rows)")
    if plot is not None:
        console.print(f"wrote {write_plot([r for r in rows], plot)}")
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(to_json(rows), indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {summary_json}")
    return records


def shootout(
    tasks: Annotated[list[str], typer.Argument(help=f"task sets: built-in NAME[:N] ({', '.join(BUILTIN)}) or a JSONL/CSV/Parquet file[:N]")],
    models: Annotated[str, typer.Option("--models", help="comma-separated portfolio model names")],
    config: Annotated[Path | None, typer.Option(help="portfolio YAML (default: $CALIBROUTE_CONFIG, else the built-in one)")] = None,
    budgets: Annotated[str, typer.Option(help="settings, e.g. no-think,1k,4k,16k or low,medium,high")] = "no-think",
    max_tokens: Annotated[int, typer.Option(min=1, help="output room for the answer, on top of a thinking budget")] = 1024,
    out: Annotated[Path | None, typer.Option(help="outcomes file (.jsonl/.csv/.parquet) for eval / calibrate budgets")] = None,
    journal: Annotated[Path | None, typer.Option(help="run journal for resume (default: OUT.journal.jsonl)")] = None,
    max_usd: Annotated[float | None, typer.Option(min=0, help="spend cap in USD for the whole run, judge included")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="calls in flight per backend")] = 4,
    retries: Annotated[int, typer.Option(min=0, help="retries of a call on 429 / 5xx / timeouts")] = 3,
    backoff: Annotated[float, typer.Option(min=0, help="first retry pause in seconds (doubles, jittered)")] = 1.0,
    abort_after: Annotated[int, typer.Option(min=1, help="stop when one model fails this many calls in a row")] = 5,
    judge: Annotated[str | None, typer.Option(help="portfolio model that grades 'judge' tasks (and SimpleQA/FRAMES)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="items per task set without its own :N")] = None,
    seed: Annotated[int, typer.Option(help="seed of the item samples (same seed, same items)")] = 0,
    temperature: Annotated[float, typer.Option(min=0, help="sampling temperature")] = 0.0,
    plot: Annotated[Path | None, typer.Option(help="cost-accuracy plot PNG (default: OUT.png)")] = None,
    regrade: Annotated[bool, typer.Option("--regrade", help="grade the journaled answers again (no model calls)")] = False,
    summary_json: Annotated[Path | None, typer.Option("--summary-json", help="write the summary table as JSON")] = None,
) -> None:
    """Run task sets through models at budgets; graded outcomes, a summary table and a cost-accuracy plot."""
    portfolio = load_portfolio(config) if config is not None else portfolio_from_env()
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise InputError("--models: name at least one portfolio model")
    for name in names + ([judge] if judge else []):
        portfolio.model(name)  # an unknown name fails here, before any data is read
    settings = parse_budgets(budgets, max_tokens)
    task_list = load_tasks(tasks, seed=seed, default_n=limit, judge=judge is not None)
    if out is None and journal is None:
        raise InputError("give --out (outcomes file) or --journal: a run without either could not be resumed")
    journal_path = journal or out.with_name(out.name + ".journal.jsonl")  # type: ignore[union-attr]
    plot = plot or (out.with_suffix(".png") if out is not None else None)
    run = RunSettings(concurrency=concurrency, retries=retries, backoff_s=backoff, max_usd=max_usd,
                      abort_after=abort_after, temperature=temperature, judge=judge, regrade=regrade)
    with Journal(journal_path) as jr:
        if jr.repaired:
            err_console.print(f"journal: cut off a torn last line ({jr.repaired} bytes) left by a killed run")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                      TimeElapsedColumn(), console=err_console) as progress:
            bar = progress.add_task("shoot-out", total=0, stats="")
            live = _Live(progress, bar)
            runner = Shootout(portfolio, names, settings, task_list, jr, run, on_record=live)
            live.spent = lambda: runner.spend.spent  # settled calls (the one just graded may lag by a moment)
            keys = [c.key for c in runner.cells]
            todo = sum(len(part) for part in runner.pending())
            progress.update(bar, total=todo, description=f"{len(task_list)} tasks x {len(names)} models x {len(settings)} budgets")
            result: RunResult | None = None
            try:
                result = asyncio.run(runner.run())
            except KeyboardInterrupt:
                progress.stop()
                _finish(jr, keys, out, plot, summary_json)
                err_console.print(f"interrupted: finished calls are kept in {journal_path}; run the same command to resume")
                raise typer.Exit(130) from None
            except CalibrouteError:
                progress.stop()
                _finish(jr, keys, out, plot, summary_json)
                raise
        _finish(jr, keys, out, plot, summary_json)
    assert result is not None
    note = f"{result.called} calls made, {result.reused} reused from {journal_path}, {result.failed} failed; spent ${result.spent_usd:.4f}"
    err_console.print(note, highlight=False)
    if result.stopped:
        err_console.print(f"stopped: {result.stopped}; raise --max-usd and run the same command to continue", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("shootout")(shootout)
