"""``calibroute calibrate budgets`` and ``calibrate routing``: settings chosen from data."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..budgets.budget_files import load_budget_data
from ..budgets.calibrate import CalibrationSettings, Pick, calibrate
from ..errors import InputError
from ..types import class_from_hint
from .files import write_text
from .routing_report import run_routing

calibrate_app = typer.Typer(no_args_is_help=True, help="Calibrate routing settings from data.")
err_console = Console(stderr=True)


def _class_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        bench, sep, cls = pair.partition("=")
        if not sep or not bench or not cls:
            raise InputError(f"--class expects BENCHMARK=CLASS, got {pair!r}")
        out[bench] = class_from_hint(cls).value
    return out


def _table(picks: list[Pick]) -> Table:
    table = Table(title="budget picks (smallest setting indistinguishable from the best)")
    for col in ("model", "benchmark", "pick", "acc", "best", "best acc", "tokens saved", "vs largest", "inverse scaling"):
        table.add_column(col, justify="right" if col not in ("model", "benchmark", "pick", "best") else "left")
    for p in picks:
        bench = f"{p.benchmark} [{p.task}]" if p.task else p.benchmark
        table.add_row(
            p.model,
            bench,
            p.setting,
            f"{p.accuracy:.3f}",
            p.best_setting,
            f"{p.best_accuracy:.3f}",
            f"{p.tokens_saved_pct:.0f}%",
            f"{p.tokens_saved_vs_largest_pct:.0f}%",
            "YES" if p.inverse_scaling else "no",
        )
    return table


@calibrate_app.command("budgets")
def budgets(
    data: Annotated[Path, typer.Argument(help="tts_knowledge_budgets folder, or a CSV/JSONL/Parquet file in the generic or outcomes format")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the picks as JSON here")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="folder for curves (PNG), settings.csv and flips.csv")] = None,
    tolerance: Annotated[float, typer.Option(help="accuracy points (0..1) a cheaper setting may trail the best by")] = 0.0,
    confidence: Annotated[float, typer.Option(help="two-sided confidence of the paired bootstrap interval")] = 0.95,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed (same seed, same picks)")] = 0,
    rule: Annotated[str, typer.Option(help="'indistinguishable' (cannot show worse) or 'equivalent' (shown within tolerance)")] = "indistinguishable",
    model: Annotated[Optional[list[str]], typer.Option("--model", help="only these models (repeatable)")] = None,
    emit_config: Annotated[Optional[Path], typer.Option("--emit-config", help="write the picks as a portfolio routes fragment (YAML)")] = None,
    class_of: Annotated[Optional[list[str]], typer.Option("--class", help="BENCHMARK=CLASS for --emit-config (default: task column, else GENERAL)")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="with --out, write only the CSV tables")] = False,
) -> None:
    """Pick, per model and benchmark, the smallest budget whose accuracy is indistinguishable from the best."""
    cfg = CalibrationSettings(tolerance=tolerance, confidence=confidence, resamples=resamples, seed=seed, rule=rule)  # type: ignore[arg-type]
    classes = _class_map(class_of or [])
    ladders = load_budget_data(data)
    if model:
        known = sorted({lad.model for lad in ladders})
        ladders = [lad for lad in ladders if lad.model in model]
        if not ladders:
            raise InputError(f"no data for model(s) {', '.join(model)}; models in the data: {', '.join(known)}")
    with err_console.status(f"bootstrapping {len(ladders)} ladder(s)"):
        picks = calibrate(ladders, cfg)
    Console(width=None if sys.stdout.isatty() else 160).print(_table(picks))
    for p in picks:
        for note in p.notes:
            err_console.print(f"note: {p.model} / {p.benchmark}: {note}", markup=False, highlight=False)
    if json_out is not None:
        payload = {"picks": [p.to_json() for p in picks], "settings": vars(cfg) | {"data": str(data)}}
        write_text(json_out, json.dumps(payload, indent=2) + "\n")
    if out is not None:
        from ..budgets.calibrate_report import write_report

        written = write_report(ladders, picks, out, plots=not no_plots)
        err_console.print(f"wrote {len(written)} file(s) to {out}", highlight=False)
    if emit_config is not None:
        from ..budgets.emit import emit_config as render

        command = "calibroute " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        write_text(emit_config, render(picks, ladders, classes, command))
        err_console.print(f"wrote route budgets to {emit_config}", highlight=False)


@calibrate_app.command("routing")
def routing(
    source: Annotated[str, typer.Argument(help="dataset name (routellm-gsm8k, routellm-mmlu, routerbench, dcrouter, ...) or an outcomes file")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="allowed relative quality loss vs always-strongest")] = 0.05,
    delta: Annotated[float, typer.Option("--delta", help="allowed probability that the guarantee fails")] = 0.1,
    splits: Annotated[int, typer.Option(min=1, max=10_000, help="random calibration/test splits to check the guarantee on")] = 1,
    calibration_share: Annotated[float, typer.Option(help="share of the prompts used to calibrate; the rest tests")] = 0.5,
    seed: Annotated[int, typer.Option(help="seed of the first split (split i uses seed + i)")] = 0,
    strong: Annotated[Optional[str], typer.Option(help="the strongest model (default: best mean quality on the calibration split)")] = None,
    weak: Annotated[Optional[str], typer.Option(help="the model to escalate from (default: the cheapest certified)")] = None,
    prices: Annotated[Optional[Path], typer.Option(help="JSON/YAML {model: {input, output}} USD per Mtok")] = None,
    config: Annotated[Optional[Path], typer.Option(help="portfolio whose model prices fill missing costs")] = None,
    write: Annotated[Optional[Path], typer.Option("--write", help="set routing.escalation.threshold in this portfolio YAML")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write every split's result as JSON here")] = None,
) -> None:
    """Escalation threshold with a guarantee: routed quality >= (1 - eps) x always-strongest, w.p. >= 1 - delta."""
    run_routing(source, epsilon, delta, splits, calibration_share, seed, strong, weak, prices, config, write, json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(calibrate_app, name="calibrate")
