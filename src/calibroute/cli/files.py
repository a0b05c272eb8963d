"""Writing a command's output file: one clear error line instead of a traceback when it cannot be written."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
