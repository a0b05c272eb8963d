"""``calibroute eval``: replay real per-prompt outcomes and measure routing strategies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ArtifactError, CalibrouteError, InputError
from ..evaluate.report import BUDGET_SHARES, SHARE_BASIS, EvalOptions, EvalReport, run_eval
from ..outcomes import DATASETS, OutcomeSet, load_dataset, load_outcomes_file
from ..outcomes.tokens import Prices, load_prices

console = Console(width=None if sys.stdout.isatty() else 160)  # keep tables readable in logs
err_console = Console(stderr=True)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or x != x:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def render(report: EvalReport, con: Console) -> None:
    """The summary tables: one row per strategy (no dollar columns on score-only data)."""
    dollars = report.basis != SHARE_BASIS
    cost = f"${report.best_cost:.3g}/prompt" if dollars else f"{100 * report.best_cost:.0f}% strong calls"
    con.print(
        f"[bold]{report.dataset}[/]: {report.n_prompts} prompts, {len(report.models)} models; "
        f"pair strong={report.strong} weak={report.weak}; best single model {report.best_model} "
        f"(quality {report.best_quality:.3f}, {cost}); {report.folds}"
    )
    title = f"routing strategies (router={report.router})" + ("" if dollars else ", cost = share of strong-model calls")
    table = Table(title=title)
    table.add_column("strategy", no_wrap=True)
    dollar_cols = [*[f"q@{s:.0%}" for s in BUDGET_SHARES], "saved@95%"] if dollars else []
    for col in ("APGR", "CPT50", "CPT80", "AIQ", *dollar_cols, "calls saved@95%"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, r in sorted(report.results.items(), key=lambda kv: (kv[1].curve.kind == "single", -kv[1].aiq)):
        money = [*[_fmt(r.at_budget[s]) for s in BUDGET_SHARES], _fmt(r.saved_at_95, pct=True)] if dollars else []
        table.add_row(name, _fmt(r.apgr), _fmt(r.cpt50, pct=True), _fmt(r.cpt80, pct=True), f"{r.aiq:.4f}", *money,
                      _fmt(r.calls_saved_at_95, pct=True))
    con.print(table)
    legend = "CPT = % strong calls to recover 50/80% of the weak->strong gap; "
    if dollars:
        legend += ("q@x% = best quality at x% of the best single model's cost; saved@95% = cost saved at >= 95% of its "
                   "quality; ")
    else:
        legend += "AIQ = area under quality vs strong-call share; "
    legend += "calls saved@95% = strong calls saved at >= 95% of the strong model's quality (RouteLLM's basis)"
    con.print(f"[dim]{legend}[/]")
    for note in report.notes:
        con.print(f"[dim]note: {note}[/]")


def _prices(prices_file: Path | None, config: Path | None) -> Prices:
    prices: Prices = {}
    if config is not None:
        from ..config import load_portfolio

        for m in load_portfolio(config).models:
            prices[m.name] = (m.input_usd_per_mtok, m.output_usd_per_mtok)
    if prices_file is not None:
        prices.update(load_prices(prices_file))
    return prices


def load_source(source: str, prices: Prices) -> OutcomeSet:
    """A dataset name, or a path to an outcomes file."""
    if source in DATASETS:
        out = load_dataset(source)
        return out.with_prices(prices) if prices else out
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source!r} is neither a dataset ({', '.join(DATASETS)}) nor an existing file")
    return load_outcomes_file(path, prices)


def register(app: typer.Typer) -> None:
    """Add the top-level ``eval`` command."""

    @app.command("eval")
    def eval_cmd(
        source: Annotated[str, typer.Argument(help=f"dataset name ({', '.join(DATASETS)}) or an outcomes file (.csv/.jsonl/.parquet)")],
        router: Annotated[str, typer.Option(help="pretrained: shipped estimators, zero-shot; cv: train on folds")] = "pretrained",
        strong: Annotated[Optional[str], typer.Option(help="strong model of the pair for APGR/CPT (default: best)")] = None,
        weak: Annotated[Optional[str], typer.Option(help="weak model of the pair (default: cheapest within 90% of best; score-only data: the worst)")] = None,
        prices: Annotated[Optional[Path], typer.Option(help="JSON/YAML {model: {input, output}} USD per Mtok")] = None,
        config: Annotated[Optional[Path], typer.Option(help="portfolio YAML whose model prices fill missing costs")] = None,
        out: Annotated[Optional[Path], typer.Option(help="write PNG plots and CSV curves into this folder")] = None,
        json_file: Annotated[Optional[Path], typer.Option("--json", help="write the full report as JSON")] = None,
        folds: Annotated[int, typer.Option(min=2, max=20, help="cross-fitting folds when the data has no split")] = 5,
        seed: Annotated[int, typer.Option(help="seed for folds and the random router")] = 0,
    ) -> None:
        """Replay per-prompt outcomes: cost-quality curves, APGR/CPT, AIQ, budgets, savings at 95% quality."""
        if router not in ("pretrained", "cv"):
            raise InputError(f"--router must be pretrained or cv, not {router!r}")
        opts = EvalOptions(router=router, strong=strong, weak=weak, n_folds=folds, seed=seed)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=err_console, transient=False) as progress:
            task = progress.add_task("loading outcomes", total=4 + folds)
            data = load_source(source, _prices(prices, config))
            progress.update(task, advance=1, description="embedding prompts")

            def tick(stage: str) -> None:
                nxt = {"embed": "classifying", "classify": "training on folds", "fold": "training on folds", "curves": "done"}
                progress.update(task, advance=1, description=nxt.get(stage, stage))

            try:
                report = run_eval(data, opts, tick=tick)
            except ArtifactError as exc:
                err_console.print(f"[yellow]warning: calibroute strategy skipped: {exc}[/]")
                report = run_eval(data, EvalOptions(**{**opts.__dict__, "with_calibroute": False}), tick=tick)
            progress.update(task, completed=progress.tasks[0].total)
        render(report, console)
        if out is not None:
            from ..evaluate.plots import write_csvs, write_plots

            for path in write_plots(report, out) + write_csvs(report, out):
                console.print(f"wrote {path}")
        if json_file is not None:
            try:
                json_file.parent.mkdir(parents=True, exist_ok=True)
                json_file.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
            except OSError as exc:
                raise CalibrouteError(f"--json {json_file}: cannot write: {exc.strerror}") from None
            console.print(f"wrote {json_file}")
