"""``calibroute dashboard``: the read-only web dashboard over a ledger, without the gateway
(e.g. one PostgreSQL ledger shared by several gateway replicas)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .report import LedgerOpt


def dashboard(
    ledger: LedgerOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG", help="portfolio YAML to show (default: the built-in one)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
    ui_token: Annotated[str | None, typer.Option(envvar="CALIBROUTE_UI_TOKEN", help="bearer token for the dashboard (or use an admin key; one of them is needed when API keys are on or the address is not loopback)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the dashboard (GET /ui) over the ledger; read-only."""
    import uvicorn

    from ..config import load_portfolio
    from ..errors import ConfigError
    from ..gateway.ui import dashboard_app, is_loopback
    from ..ledger import open_ledger

    if config is not None and not config.is_file():
        raise ConfigError(f"{config}: no such file")
    portfolio = load_portfolio(str(config) if config else None)
    with open_ledger(ledger, must_exist=True) as opened:
        if not ui_token and not is_loopback(host) and not opened.keys_enabled():
            raise ConfigError(f"--host {host} is not loopback: give --ui-token or create an admin key "
                              "(calibroute keys create NAME --admin) so the dashboard is not open to the network")
        typer.echo(f"calibroute dashboard on http://{host}:{port}/ui (ledger: {opened.location})", err=True)
        uvicorn.run(dashboard_app(opened, portfolio, host, ui_token), host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
