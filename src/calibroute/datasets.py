"""Where the shared datasets live: $CALIBROUTE_DATA, else ../shared/data beside the project."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError


def data_root() -> Path:
    """The shared data folder; raise DataError naming what was looked for."""
    env = os.environ.get("CALIBROUTE_DATA")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise DataError(f"CALIBROUTE_DATA={env} is not a directory")
        return path
    candidates = [Path.cwd() / ".." / "shared" / "data"]
    candidates += [p / ".." / "shared" / "data" for p in Path(__file__).resolve().parents]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    raise DataError("shared data not found: set CALIBROUTE_DATA or place it at ../shared/data")
