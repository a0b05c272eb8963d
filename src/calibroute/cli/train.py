"""``calibroute train ...``: rebuild the shipped estimators from ../shared/data."""

from __future__ import annotations

from importlib import import_module

import typer

train_app = typer.Typer(no_args_is_help=True, help="Rebuild the shipped classifier and difficulty artifacts.")

# Each module defines ``register(train_app)``.
TRAIN_MODULES = ("train_classifier", "train_difficulty")


def register(app: typer.Typer) -> None:
    for name in TRAIN_MODULES:
        import_module(f".{name}", __package__).register(train_app)
    app.add_typer(train_app, name="train")
