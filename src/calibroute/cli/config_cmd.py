"""``calibroute config check|show``: validate a portfolio file, print the effective one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console

from ..config import load_portfolio

config_app = typer.Typer(no_args_is_help=True, help="Validate and show portfolio configs.")


@config_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="portfolio YAML file")]) -> None:
    """Exit 0 if FILE is a valid portfolio; otherwise print where and why it is not, exit 2."""
    portfolio = load_portfolio(file)
    typer.echo(f"{file}: ok ({len(portfolio.models)} models, {len(portfolio.routes)} routes)")


@config_app.command("show")
def show(
    file: Annotated[Optional[Path], typer.Argument(help="portfolio YAML (default: $CALIBROUTE_CONFIG or built-in)")] = None,
) -> None:
    """Print the effective portfolio as YAML, defaults filled in."""
    import os

    portfolio = load_portfolio(file if file is not None else (os.environ.get("CALIBROUTE_CONFIG") or None))
    data = portfolio.model_dump(mode="json")
    Console().print(yaml.safe_dump(data, sort_keys=False), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
