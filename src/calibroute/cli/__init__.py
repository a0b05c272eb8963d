"""The calibroute command line: one typer app, one module per command group.

Every ``CalibrouteError`` raised by a command ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import CalibrouteError

# Each module defines ``register(app)``; adding a command group is one line here.
COMMAND_MODULES = ("demo", "route", "config_cmd", "train", "serve", "report", "keys", "evaluate", "calibrate", "economics", "dashboard",
                   "shootout")


class _Group(TyperGroup):
    """Turns calibroute's typed errors into one clear line instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CalibrouteError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="calibroute: the smallest model that solves the problem, with a task-appropriate reasoning budget.",
)

for _name in COMMAND_MODULES:
    import_module(f".{_name}", __name__).register(app)


def main() -> None:
    try:
        app()
    except CalibrouteError as exc:  # raised outside a command (e.g. while parsing)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
