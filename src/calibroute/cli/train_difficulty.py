"""(placeholder: being built)"""

from __future__ import annotations

import typer


def register(train_app: typer.Typer) -> None:
    """Add this module's train command."""
