"""``calibroute train difficulty``: rebuild the difficulty-estimator artifact from the outcome datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..errors import InputError


def train_difficulty(
    data: Annotated[Optional[Path], typer.Option("--data", help="shared data folder (default: $CALIBROUTE_DATA or ../shared/data)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="where to write difficulty.npz (default: the package's artifacts folder)")] = None,
    feature: Annotated[Optional[list[str]], typer.Option("--feature", help="stats, hash, embedding (repeatable; default stats + hash)")] = None,
    c: Annotated[float, typer.Option("--c", help="inverse L2 regularisation strength")] = 0.3,
    both_wrong: Annotated[str, typer.Option("--both-wrong", help="when both models fail: 'weak' (label: weak suffices) or 'drop'")] = "weak",
) -> None:
    """Train the difficulty estimator (deterministic for the same data and options)."""
    from ..classify.difficulty import ARTIFACT_DIR, FEATURE_KINDS
    from ..datasets import data_root

    try:
        from ..classify.difficulty_train import DifficultyConfig, build_artifact
    except ImportError as exc:  # pragma: no cover - scikit-learn is a train-time extra
        raise InputError(f"training needs scikit-learn: pip install 'calibroute[train]' ({exc.name} missing)") from None
    if both_wrong not in ("weak", "drop"):
        raise InputError("--both-wrong must be 'weak' or 'drop'")
    if c <= 0:
        raise InputError("--c must be > 0")
    features = tuple(dict.fromkeys(["stats", *(feature or ["hash"])]))
    unknown = sorted(set(features) - set(FEATURE_KINDS))
    if unknown:
        raise InputError(f"unknown --feature {', '.join(unknown)}; known features: {', '.join(FEATURE_KINDS)}")
    cfg = DifficultyConfig(features=features, c=c, both_wrong=both_wrong)  # type: ignore[arg-type]
    console = Console(stderr=True)
    data_dir = data if data is not None else data_root()
    if not data_dir.is_dir():
        raise InputError(f"--data {data_dir} is not a directory")
    out_dir = out if out is not None else ARTIFACT_DIR
    with console.status("training") as status:
        path = build_artifact(data_dir, out_dir, cfg, progress=lambda msg: status.update(msg))
    console.print(f"difficulty: {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)


def register(train_app: typer.Typer) -> None:
    """Add ``train difficulty``."""
    train_app.command("difficulty")(train_difficulty)
