"""``calibroute report`` (spend and savings from the ledger) and ``calibroute keys`` (client API keys)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ..ledger import ApiKey, open_ledger
from ..ledger.report import SpendLine, SpendReport, parse_when, spend_report

LedgerOpt = Annotated[
    Optional[str],
    typer.Option("--ledger", "-l", envvar="CALIBROUTE_LEDGER",
                 help="SQLite file or sqlite:///, postgresql:// URL (default ./calibroute-ledger.db)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
TITLES = {"class": "task class", "model": "model", "key": "API key"}

keys_app = typer.Typer(no_args_is_help=True, help="Client API keys for the gateway (stored hashed).")


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


def _key_dict(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id, "name": key.name, "spend_limit_usd": key.spend_limit_usd, "spent_usd": key.spent_usd,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    limit: Annotated[Optional[float], typer.Option("--limit", help="spend limit in USD (default: none)")] = None,
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its token: it is shown once and stored only as a hash."""
    with open_ledger(ledger, must_exist=False) as opened:
        key, token = opened.create_key(name, limit)
    if as_json:
        typer.echo(json.dumps({**_key_dict(key), "token": token}))
        return
    typer.echo(token)
    Console(stderr=True).print(
        f"created {key.id} ({key.name}), limit {_usd(limit) if limit is not None else 'none'}; "
        "the token above is shown only now", highlight=False)


@keys_app.command("list")
def keys_list(ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Every key with its spend and limit (tokens are never shown again)."""
    with open_ledger(ledger, must_exist=True) as opened:
        keys = opened.list_keys()
    if as_json:
        typer.echo(json.dumps([_key_dict(k) for k in keys]))
        return
    table = Table()
    for col in ("id", "name", "spent", "limit", "created (UTC)", "state"):
        table.add_column(col, justify="right" if col in ("spent", "limit") else "left")
    for k in keys:
        state = "revoked" if k.revoked_at else ("over limit" if k.over_limit else "active")
        table.add_row(k.id, k.name, _usd(k.spent_usd), _usd(k.spend_limit_usd) if k.spend_limit_usd is not None else "-",
                      f"{k.created_at:%Y-%m-%d %H:%M}" if k.created_at else "-", state)
    Console().print(table if keys else "no API keys: the gateway accepts requests without a key")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID", help="the key id, e.g. key_0123abcd4567")],
                ledger: LedgerOpt = None) -> None:
    """Revoke a key: its requests get 401 (a running gateway notices within seconds)."""
    with open_ledger(ledger, must_exist=True) as opened:
        key = opened.revoke_key(key_id)
    typer.echo(f"revoked {key.id} ({key.name})")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.add_typer(keys_app, name="keys")
