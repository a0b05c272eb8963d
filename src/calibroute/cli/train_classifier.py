"""``calibroute train classifier``: rebuild the task-classifier artifacts from the labelled prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import InputError


def train_classifier(
    data: Annotated[
        Path | None, typer.Option("--data", help="shared data folder (default: $CALIBROUTE_DATA or ../shared/data)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="where to write artifacts (default: the package's artifacts folder)")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="lexical, embedding or combined (repeatable; default lexical + embedding)"),
    ] = None,
    static_model: Annotated[
        Path | None, typer.Option("--static-model", help="a model2vec folder to pack as the static embedding")
    ] = None,
    cap: Annotated[int, typer.Option(help="max rows per (source, label)")] = 500,
    seed: Annotated[int, typer.Option(help="random seed (splits, sampling)")] = 0,
) -> None:
    """Train the task classifiers (deterministic for the same data and seed)."""
    from ..classify.linear import ARTIFACT_DIR, SHIPPED_VARIANTS
    from ..datasets import data_root

    try:
        import sklearn.linear_model  # noqa: F401  loaded before threadpool_limits, so its OpenMP pool is limited too
        from threadpoolctl import threadpool_limits  # ships with scikit-learn

        from ..classify.training import TrainConfig, train_classifiers
    except ImportError as exc:  # scikit-learn is a train-time extra
        raise InputError(f"training needs scikit-learn: pip install 'calibroute[train]' ({exc.name} missing)") from None
    if cap < 10:
        raise InputError("--cap must be at least 10")
    console = Console(stderr=True)
    data_dir = data if data is not None else data_root()
    out_dir = out if out is not None else ARTIFACT_DIR
    # One BLAS thread: multi-threaded reductions round differently, and the artifact must be byte-identical.
    with threadpool_limits(limits=1), console.status("training") as status:
        paths = train_classifiers(
            data_dir,
            out_dir,
            variants=tuple(variant) if variant else SHIPPED_VARIANTS,
            cfg=TrainConfig(cap=cap, seed=seed),
            static_model=static_model,
            progress=lambda msg: status.update(msg),
        )
    for name, path in paths.items():
        console.print(f"{name}: {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)


def register(train_app: typer.Typer) -> None:
    """Add ``train classifier``."""
    train_app.command("classifier")(train_classifier)
