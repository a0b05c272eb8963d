"""``calibroute keys``: client API keys for the gateway, with spend and rate limits."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..ledger import ApiKey, open_ledger
from ..ledger.keys import ADMIN, API, KINDS, UNSET
from .report import JsonOpt, LedgerOpt, _usd

keys_app = typer.Typer(no_args_is_help=True, help="Client API keys for the gateway (stored hashed).")

RpmOpt = Annotated[int | None, typer.Option("--rpm", help="requests per minute (default: none; 0 on update: remove)")]
TpmOpt = Annotated[int | None, typer.Option("--tpm", help="prompt + completion tokens per minute (default: none; 0 on update: remove)")]


def _key_dict(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id, "name": key.name, "kind": key.kind, "spend_limit_usd": key.spend_limit_usd, "spent_usd": key.spent_usd,
        "rpm_limit": key.rpm_limit, "tpm_limit": key.tpm_limit,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _limits(key: ApiKey) -> str:
    spend = _usd(key.spend_limit_usd) if key.spend_limit_usd is not None else "none"
    return f"limit {spend}, {key.rpm_limit or 'no'} rpm, {key.tpm_limit or 'no'} tpm"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    limit: Annotated[float | None, typer.Option("--limit", help="spend limit in USD (default: none)")] = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    admin: Annotated[bool, typer.Option("--admin", help="an admin key: calls the API and also opens the dashboard (/ui)")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help=f"{' or '.join(KINDS)} (default {API}; --admin is --kind {ADMIN})")] = None,
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its token: it is shown once and stored only as a hash."""
    from ..errors import InputError

    if admin and kind not in (None, ADMIN):
        raise InputError(f"--admin and --kind {kind} disagree: give one of them")
    with open_ledger(ledger, must_exist=False) as opened:
        key, token = opened.keys.create(name, limit, rpm_limit=rpm, tpm_limit=tpm, kind=ADMIN if admin else kind or API)
    if as_json:
        typer.echo(json.dumps({**_key_dict(key), "token": token}))
        return
    typer.echo(token)
    Console(stderr=True).print(f"created {key.kind} key {key.id} ({key.name}), {_limits(key)}; the token above is shown only now",
                               highlight=False)


@keys_app.command("update")
def keys_update(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="the key id, e.g. key_0123abcd4567")],
    limit: Annotated[float | None, typer.Option("--limit", help="new spend limit in USD")] = None,
    no_limit: Annotated[bool, typer.Option("--no-limit", help="remove the spend limit")] = False,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a key's limits (a running gateway applies them within its key refresh)."""
    from ..errors import InputError

    if no_limit and limit is not None:
        raise InputError("give --limit or --no-limit, not both")
    changes: dict[str, Any] = {
        "spend_limit_usd": None if no_limit else (limit if limit is not None else UNSET),
        "rpm_limit": UNSET if rpm is None else (rpm or None),
        "tpm_limit": UNSET if tpm is None else (tpm or None),
    }
    if all(v is UNSET for v in changes.values()):
        raise InputError("nothing to change: give --limit, --no-limit, --rpm or --tpm")
    with open_ledger(ledger, must_exist=True) as opened:
        key = opened.keys.update(key_id, **changes)
    typer.echo(json.dumps(_key_dict(key)) if as_json else f"updated {key.id} ({key.name}): {_limits(key)}")


@keys_app.command("list")
def keys_list(ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Every key with its spend and limits (tokens are never shown again)."""
    with open_ledger(ledger, must_exist=True) as opened:
        keys = opened.list_keys()
    if as_json:
        typer.echo(json.dumps([_key_dict(k) for k in keys]))
        return
    table = Table()
    for col in ("id", "name", "kind", "spent", "limit", "rpm", "tpm", "created (UTC)", "state"):
        table.add_column(col, justify="right" if col in ("spent", "limit", "rpm", "tpm") else "left")
    for k in keys:
        state = "revoked" if k.revoked_at else ("over limit" if k.over_limit else "active")
        table.add_row(k.id, k.name, k.kind, _usd(k.spent_usd), _usd(k.spend_limit_usd) if k.spend_limit_usd is not None else "-",
                      str(k.rpm_limit or "-"), str(k.tpm_limit or "-"),
                      f"{k.created_at:%Y-%m-%d %H:%M}" if k.created_at else "-", state)
    Console().print(table if keys else "no API keys: the gateway accepts requests without a key")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID", help="the key id, e.g. key_0123abcd4567")],
                ledger: LedgerOpt = None) -> None:
    """Revoke a key: its requests get 401 (within 1 s on PostgreSQL, a few seconds on SQLite)."""
    with open_ledger(ledger, must_exist=True) as opened:
        key = opened.revoke_key(key_id)
    typer.echo(f"revoked {key.id} ({key.name})")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
