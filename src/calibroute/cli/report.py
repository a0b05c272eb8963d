"""``calibroute report``: spend and savings from the ledger."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ..ledger import open_ledger
from ..ledger.report import SpendLine, SpendReport, parse_when, spend_report

LedgerOpt = Annotated[
    Optional[str],
    typer.Option("--ledger", "-l", envvar="CALIBROUTE_LEDGER",
                 help="SQLite file or sqlite:///, postgresql:// URL (default ./calibroute-ledger.db)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
TITLES = {"class": "task class", "model": "model", "key": "API key"}

def _usd(value: float) -> str:
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _count(n: int) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div * 10:
            return f"{n / div:.0f}{unit}"
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def _spend_table(title: str, lines: list[SpendLine], total: SpendLine) -> Table:
    table = Table(title=f"by {title}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(title, overflow="fold")
    for name in ("requests", "tokens in/out", "cost", "baseline", "savings", "saved"):
        table.add_column(name, justify="right", no_wrap=True)
    for line in [*lines, total]:
        table.add_row(
            f"{line.label} {line.group}" if line.label else line.group, f"{line.requests:,}",
            f"{_count(line.prompt_tokens)}/{_count(line.completion_tokens)}",
            _usd(line.cost_usd), _usd(line.baseline_cost_usd), _usd(line.savings_usd), _pct(line.savings_pct),
            style="bold" if line is total else None, end_section=bool(lines) and line is lines[-1],
        )
    return table


def print_report(rep: SpendReport, location: str) -> None:
    console = Console()
    period = f"{rep.since:%Y-%m-%d %H:%M} to {rep.until:%Y-%m-%d %H:%M} UTC" if rep.since else f"all time to {rep.until:%Y-%m-%d %H:%M} UTC"
    console.print(f"ledger {location}, {period}", highlight=False)
    if rep.total.requests == 0:
        console.print("no requests recorded in this period")
        return
    for name, lines in rep.groups.items():
        console.print(_spend_table(TITLES[name], lines, rep.total))
    t = rep.total
    console.print(
        f"{t.requests:,} requests ({t.errors:,} not ok), {_count(t.prompt_tokens)} tokens in, "
        f"{_count(t.completion_tokens)} out ({_count(t.reasoning_tokens)} thinking)\n"
        f"spent {_usd(t.cost_usd)}; always the largest model: {_usd(t.baseline_cost_usd)}; "
        f"saved {_usd(t.savings_usd)} ({_pct(t.savings_pct)})",
        highlight=False,
    )
    if t.cached_tokens or t.affinity_saved_usd:
        console.print(
            f"prompt cache: {_count(t.cached_tokens)} of {_count(t.prompt_tokens)} tokens in read from cache, "
            f"{_usd(t.cache_saved_usd)} less than fresh input; conversation affinity saved {_usd(t.affinity_saved_usd)}",
            highlight=False,
        )


def report(
    ledger: LedgerOpt = None,
    since: Annotated[Optional[str], typer.Option(help="start: 7d, 12h, 2w or a date/time such as 2026-11-01 (UTC)")] = None,
    until: Annotated[Optional[str], typer.Option(help="end, exclusive (default now); same forms as --since")] = None,
    by: Annotated[Optional[list[str]], typer.Option(help="class, model or key; repeatable (default: class and model)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend and savings against always using the portfolio's largest model."""
    start = parse_when(since) if since else None
    end = parse_when(until) if until else None
    with open_ledger(ledger, must_exist=True) as opened:
        rep = spend_report(opened.engine, since=start, until=end, by=by)
        location = opened.location
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
    else:
        print_report(rep, location)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
