"""``calibroute train classifier``: rebuild the task-classifier artifacts, or adapt the shipped one to your labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import InputError

ENCODER = "encoder"


def _adapt(extra: list[Path], out: Path | None, console: Console) -> None:
    """Refit the shipped encoder's head on the team's rows (no torch, no shared data needed)."""
    from ..classify.adapt import write_adapted_head
    from ..classify.encoder import encoder

    for path in extra:
        if not path.is_file():
            raise InputError(f"--extra {path}: file not found")
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        raise InputError("adapting the classifier needs scipy: pip install 'calibroute[train]'") from None
    with console.status("adapting") as status:
        path = write_adapted_head(encoder(), extra, out or Path("classifier-head.npz"), progress=status.update)
    console.print(f"head: {path}\nuse it in your portfolio:\n  routing:\n    classifier_head: {path.resolve()}", highlight=False)


def _train_encoder(data_dir: Path, out_dir: Path, seed: int, console: Console) -> None:
    from ..classify.encoder_training import build_data, train_encoder
    from ..classify.finetune import FinetuneConfig

    data = build_data(data_dir, seed=seed)
    train_encoder(data, out_dir, FinetuneConfig(seed=seed), log=lambda msg: console.print(msg, highlight=False))


def train_classifier(
    data: Annotated[
        Path | None, typer.Option("--data", help="shared data folder (default: $CALIBROUTE_DATA or ../shared/data)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="where to write artifacts (default: the package's artifacts folder; with --extra: classifier-head.npz)"),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="encoder, lexical, embedding or combined (repeatable; default encoder)"),
    ] = None,
    extra: Annotated[
        list[Path] | None,
        typer.Option("--extra", help="your labelled requests (prompt or messages + task_class; JSONL/CSV/Parquet): adapt the shipped classifier"),
    ] = None,
    static_model: Annotated[
        Path | None, typer.Option("--static-model", help="a model2vec folder to pack as the static embedding")
    ] = None,
    cap: Annotated[int, typer.Option(help="max rows per (source, label) for the linear variants")] = 500,
    seed: Annotated[int, typer.Option(help="random seed (splits, sampling, fine-tuning)")] = 0,
) -> None:
    """Train the task classifiers (deterministic for the same data and seed), or adapt one with --extra."""
    from ..classify.linear import ARTIFACT_DIR
    from ..datasets import data_root

    console = Console(stderr=True)
    if extra:
        if variant:
            raise InputError("--extra adapts the shipped encoder classifier; it takes no --variant")
        _adapt(extra, out, console)
        return
    variants = list(variant) if variant else [ENCODER]
    data_dir = data if data is not None else data_root()
    out_dir = out if out is not None else ARTIFACT_DIR
    if ENCODER in variants:
        _train_encoder(data_dir, out_dir, seed, console)
    linear = [v for v in variants if v != ENCODER]
    if not linear:
        return
    try:
        import sklearn.linear_model  # noqa: F401  loaded before threadpool_limits, so its OpenMP pool is limited too
        from threadpoolctl import threadpool_limits  # ships with scikit-learn

        from ..classify.training import TrainConfig, train_classifiers
    except ImportError as exc:  # scikit-learn is a train-time extra
        raise InputError(f"training needs scikit-learn: pip install 'calibroute[train]' ({exc.name} missing)") from None
    if cap < 10:
        raise InputError("--cap must be at least 10")
    # One BLAS thread: multi-threaded reductions round differently, and the artifact must be byte-identical.
    with threadpool_limits(limits=1), console.status("training") as status:
        paths = train_classifiers(
            data_dir,
            out_dir,
            variants=tuple(linear),
            cfg=TrainConfig(cap=cap, seed=seed),
            static_model=static_model,
            progress=lambda msg: status.update(msg),
        )
    for name, path in paths.items():
        console.print(f"{name}: {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)


def register(train_app: typer.Typer) -> None:
    """Add ``train classifier``."""
    train_app.command("classifier")(train_classifier)
