"""``calibroute serve``: the OpenAI-compatible gateway under uvicorn."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG", help="portfolio YAML")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    ledger: Annotated[Optional[str], typer.Option(envvar="CALIBROUTE_LEDGER", help="SQLite path or postgresql:// URL")] = None,
    store_prompts: Annotated[bool, typer.Option(help="also record prompt text in the ledger")] = False,
    ledger_journal: Annotated[str, typer.Option(envvar="CALIBROUTE_LEDGER_JOURNAL", help="crash journal directory: 'auto' (next to the ledger) or 'off'")] = "auto",
    max_body_bytes: Annotated[int, typer.Option(help="larger request bodies get 413")] = 4 * 1024 * 1024,
    retries: Annotated[int, typer.Option(help="retries per model before falling back")] = 1,
    breaker_cooldown: Annotated[float, typer.Option(help="seconds a failing model stays out")] = 30.0,
    reservation_ttl: Annotated[float, typer.Option(help="seconds after which spend held by a request whose process died is released")] = 900.0,
    redis_url: Annotated[Optional[str], typer.Option(envvar="CALIBROUTE_REDIS_URL", help="redis:// URL: rate limits shared by every process (default: per process)")] = None,
    request_timeout: Annotated[float, typer.Option(help="seconds per request over all retries and fallbacks (504)")] = 600.0,
    body_timeout: Annotated[float, typer.Option(help="seconds a client has to send its request body (408)")] = 30.0,
    affinity: Annotated[bool, typer.Option(help="keep each conversation on its model (moves only upward; tool turns stay)")] = False,
    affinity_jump: Annotated[bool, typer.Option(help="with --affinity: a climbing conversation goes to its route's highest rung within twice the routed model's turn cost")] = True,
    affinity_release: Annotated[bool, typer.Option(help="with --affinity: leave a far dearer model once staying costs over twice moving (--no-affinity-release: escalations only)")] = True,
    thinking_key: Annotated[str | None, typer.Option(envvar="CALIBROUTE_THINKING_KEY", show_default=False, help="key that signs /v1/messages thinking blocks; give replicas the same one (default: random, shared by this gateway's workers)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes sharing the port (each with its own connections; /metrics sums them)")] = 1,
    ui_token: Annotated[Optional[str], typer.Option(envvar="CALIBROUTE_UI_TOKEN", help="bearer token for the /ui dashboard (needed when API keys are on or the address is not loopback)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the OpenAI Chat Completions API with calibrated routing (model "auto" or an alias)."""
    from ..errors import ConfigError
    from ..gateway import GatewaySettings
    from ..gateway.workers import run
    from ..ledger.store import describe, resolve_url

    if config is not None and not config.is_file():
        raise ConfigError(f"{config}: no such file")
    try:
        settings = GatewaySettings(config=str(config) if config else None, host=host, port=port, ledger=ledger,
                                   store_prompts=store_prompts, ledger_journal=ledger_journal,
                                   max_body_bytes=max_body_bytes, retries=retries,
                                   breaker_cooldown_s=breaker_cooldown, request_timeout_s=request_timeout,
                                   body_timeout_s=body_timeout, reservation_ttl_s=reservation_ttl,
                                   redis_url=redis_url, ui_token=ui_token, affinity=affinity, affinity_jump=affinity_jump,
                                   affinity_release=affinity_release,
                                   thinking_key=thinking_key or secrets.token_hex(32))
    except ValueError as exc:
        raise ConfigError(f"invalid option: {exc}") from None
    where = describe(resolve_url(settings.ledger))
    typer.echo(f"calibroute gateway on http://{host}:{port}/v1 (ledger: {where}, {workers} worker{'s' if workers > 1 else ''}, "
               f"rate limits {'shared via Redis' if redis_url else 'per process'})", err=True)
    run(settings, workers=workers, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
