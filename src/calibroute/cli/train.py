"""``calibroute train ...``: rebuild the shipped estimators from ../shared/data."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

import typer

from ..errors import InputError

train_app = typer.Typer(no_args_is_help=True, help="Rebuild the shipped classifier and difficulty artifacts.")



@train_app.callback()
def _needs_training_extra() -> None:
    """Training uses scikit-learn and SciPy, which serving does not need."""
    missing = [m for m in ("sklearn", "scipy") if find_spec(m) is None]
    if missing:
        raise InputError(f"training needs {', '.join(missing)}: pip install 'calibroute[train]'")


# Each module defines ``register(train_app)``.
TRAIN_MODULES = ("train_classifier", "train_difficulty")


def register(app: typer.Typer) -> None:
    for name in TRAIN_MODULES:
        import_module(f".{name}", __package__).register(train_app)
    app.add_typer(train_app, name="train")
