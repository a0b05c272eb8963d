"""Rebuild the shipped difficulty estimator from ../shared/data (``calibroute train difficulty``).

Trains on the *training* rows of every dataset in ``difficulty_data.PAIRS`` (each dataset gets
the same total weight), so the held-out rows the bench and tests score were never seen. The
threshold quantiles come from ``reference_prompts``: a traffic-like mix of the prompt pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .difficulty import ARTIFACT_NAME, DifficultyModel, fit_difficulty
from .difficulty_data import (
    EVAL_ONLY_PAIRS,
    TRAIN_DATASETS,
    BothWrong,
    LabelledSet,
    drop_leaks,
    labelled_set,
    training_rows,
)

# Reference traffic: chat-like sources dominate, a thin slice of each benchmark-style source.
REFERENCE_CHAT_CAP = 400  # per (source, label) for arena_hard_v2, hellobench, expertqa, awesome_chatgpt_prompts
REFERENCE_OTHER_CAP = 60  # per (source, label) for everything else in the pool


@dataclass(frozen=True)
class DifficultyConfig:
    """Everything that decides the shipped artifact; saved in its metadata."""

    features: tuple[str, ...] = ("stats", "hash")
    c: float = 0.3  # chosen on held-out AUROC/APGR (docs/bench-difficulty.md)
    both_wrong: BothWrong = "weak"
    seed: int = 0


def reference_prompts(prompts_root: Path, seed: int = 0) -> list[str]:
    """The traffic-like reference set the threshold quantiles are computed on (deterministic)."""
    from .corpus import CHAT_SOURCES, balance, load_pool

    rows = load_pool(prompts_root)
    chat = [r for r in rows if r.source in CHAT_SOURCES]
    other = [r for r in rows if r.source not in CHAT_SOURCES]
    return [r.text for r in balance(chat, REFERENCE_CHAT_CAP, seed) + balance(other, REFERENCE_OTHER_CAP, seed)]


def load_sets(root: Path, both_wrong: BothWrong = "weak") -> list[LabelledSet]:
    """The training datasets and the evaluation-only ones, with cross-dataset duplicates of held-out prompts marked."""
    return drop_leaks([labelled_set(name, root, both_wrong) for name in (*TRAIN_DATASETS, *EVAL_ONLY_PAIRS)])


def train_difficulty(
    root: Path,
    cfg: DifficultyConfig = DifficultyConfig(),
    progress: Callable[[str], None] = lambda msg: None,
) -> DifficultyModel:
    """Fit the estimator on the training rows of the shared datasets under ``root``."""
    progress("loading outcome datasets")
    sets = [s for s in load_sets(root, cfg.both_wrong) if s.name in TRAIN_DATASETS]
    texts, labels, weights = training_rows(sets, test=False)
    progress("loading reference prompts")
    reference = reference_prompts(root / "prompts", cfg.seed)
    progress(f"fitting on {len(texts)} prompts")
    meta = {
        "trained_on": {s.name: int(s.rows(False).size) for s in sets},
        "dropped_near_duplicates_of_held_out": {s.name: int(0 if s.leaked is None else s.leaked.sum()) for s in sets},
        "pairs": {s.name: {"weak": list(s.weak_models), "strong": s.strong_model} for s in sets},
        "both_wrong": cfg.both_wrong,
        "reference": f"prompt pool: chat sources <= {REFERENCE_CHAT_CAP}, others <= {REFERENCE_OTHER_CAP} per (source, label)",
    }
    return fit_difficulty(texts, labels, weights, features=cfg.features, c=cfg.c, reference_texts=reference, meta=meta)


def build_artifact(root: Path, out_dir: Path, cfg: DifficultyConfig = DifficultyConfig(), progress: Callable[[str], None] = lambda msg: None) -> Path:
    model = train_difficulty(root, cfg, progress)
    path = out_dir / ARTIFACT_NAME
    model.save(path)
    return path
