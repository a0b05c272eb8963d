"""Training labels for the difficulty estimator: "does the cheaper model do as well?" per prompt.

For each dataset we fix (cheaper model, stronger model) pairs and label a pair 1 when the weak
score >= the strong score. Ties count as "weak suffices": both right obviously, and both wrong
too by default, because escalating would not have helped (``both_wrong="weak"``); with
``both_wrong="drop"`` such pairs are left out of the training label. A prompt's label is the
mean over its pairs (a soft label in [0, 1]). Held-out rows are the dataset's own test split,
else a fixed 20 % of prompts chosen by a hash of their near-duplicate key; evaluation-only
datasets are held out entirely.

The datasets share benchmark questions (dcrouter's MMLU/GSM8K/ARC items reappear in RouteLLM
and RouterBench, MMLU passages are shared by several questions), so ``drop_leaks`` removes from
training every prompt whose near-duplicate key (first 150 normalised characters) matches a
held-out prompt of *any* dataset; keys shared by 5+ prompts of a dataset are templates, not
duplicates, and fall back to the full text.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError

BothWrong = Literal["weak", "drop"]

# dataset -> (cheaper models, stronger model). Cheaper = at least ~5x lower cost per call.
PAIRS: dict[str, tuple[tuple[str, ...], str]] = {
    "routellm-mmlu": (("mistralai/Mixtral-8x7B-Instruct-v0.1",), "gpt-4-1106-preview"),
    "routellm-gsm8k": (("mistralai/Mixtral-8x7B-Instruct-v0.1",), "gpt-4-1106-preview"),
    "routerbench": (
        ("mistralai/mixtral-8x7b-chat", "gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat"),
        "gpt-4-1106-preview",
    ),
    "dcrouter": (
        ("qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "gemma-2-9b-it"),
        "llama-3.1-nemotron-51b-instruct",
    ),
}
# Evaluated, never trained on (RouterArena asks not to): the lower-scoring model as "weak".
EVAL_ONLY_PAIRS: dict[str, tuple[tuple[str, ...], str]] = {
    "routerarena": (("claude-3-haiku-20240307",), "gemini-2.0-flash-001"),
}
TRAIN_DATASETS: tuple[str, ...] = tuple(PAIRS)
HELDOUT_MODULO = 5  # 1 prompt in 5 is held out where a dataset has no split of its own
NEAR_DUP_CHARS = 150
TEMPLATE_COUNT = 5  # a key shared by this many prompts of one dataset is a template


@dataclass(frozen=True)
class LabelledSet:
    """One dataset's prompts with soft labels, a held-out mask and the raw pair outcomes for routing curves."""

    name: str
    texts: list[str]
    labels: np.ndarray  # P, mean over pairs of 1[weak >= strong]; NaN when no pair is usable
    test: np.ndarray  # P bool: held out
    weak_scores: np.ndarray  # P x K (K cheaper models)
    strong_scores: np.ndarray  # P
    weak_models: tuple[str, ...]
    strong_model: str
    tasks: list[str] | None
    keys: list[str]  # near-duplicate keys
    leaked: np.ndarray | None = None  # P bool: training rows that duplicate some held-out prompt

    def rows(self, test: bool) -> np.ndarray:
        """Indices of held-out (``test=True``) or training rows that have a label (leaks excluded)."""
        keep = (self.test == test) & ~np.isnan(self.labels)
        if not test and self.leaked is not None:
            keep &= ~self.leaked
        return np.flatnonzero(keep)


def near_dup_keys(texts: list[str]) -> list[str]:
    """Normalised prefix per text; texts whose prefix is a template (frequent) keep their full normalised text."""
    from .corpus import normalize_key

    full = [normalize_key(t) for t in texts]
    prefix = [k[:NEAR_DUP_CHARS] for k in full]
    counts = Counter(prefix)
    return [p if counts[p] < TEMPLATE_COUNT else f for p, f in zip(prefix, full)]


def drop_leaks(sets: list[LabelledSet]) -> list[LabelledSet]:
    """Mark training rows whose key equals a held-out key of any set (they stay out of ``rows(False)``)."""
    held = {s.keys[i] for s in sets for i in np.flatnonzero(s.test)}
    return [replace(s, leaked=np.array([k in held for k in s.keys], dtype=bool) & ~s.test) for s in sets]


def hash_heldout(texts: list[str], modulo: int = HELDOUT_MODULO) -> np.ndarray:
    """A fixed held-out mask from the prompt text itself: stable across runs, loaders and machines."""
    return np.array([zlib.crc32(t.encode("utf-8")) % modulo == 0 for t in texts], dtype=bool)


def pair_labels(weak: np.ndarray, strong: np.ndarray, both_wrong: BothWrong = "weak") -> np.ndarray:
    """P soft labels from P x K weak scores and P strong scores; NaN where no pair counts."""
    ok = ~np.isnan(weak) & ~np.isnan(strong)[:, None]
    wins = (weak >= strong[:, None]).astype(np.float64)
    if both_wrong == "drop":
        ok &= np.maximum(weak, strong[:, None]) > 0
    elif both_wrong != "weak":
        raise ValueError(f"both_wrong must be 'weak' or 'drop', not {both_wrong!r}")
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = np.where(n > 0, (wins * ok).sum(axis=1) / np.maximum(n, 1), np.nan)
    return out


def labelled_set(name: str, root: Path | None = None, both_wrong: BothWrong = "weak") -> LabelledSet:
    """Load a dataset with ``calibroute.outcomes.load_dataset`` and label it."""
    from ..outcomes.sources import load_dataset

    pairs = PAIRS.get(name) or EVAL_ONLY_PAIRS.get(name)
    eval_only = name in EVAL_ONLY_PAIRS
    if pairs is None:
        raise DataError(f"no difficulty pairs for dataset {name!r}; known: {', '.join([*PAIRS, *EVAL_ONLY_PAIRS])}")
    weak_models, strong_model = pairs
    data = load_dataset(name, root)
    weak = data.scores[:, [data.model_index(m) for m in weak_models]]
    strong = data.scores[:, data.model_index(strong_model)]
    keys = near_dup_keys(data.prompts)
    if eval_only:  # never trained on: every prompt is held out
        test = np.ones(len(keys), dtype=bool)
    else:
        test = (data.split == "test") if data.split is not None else hash_heldout(keys)
    return LabelledSet(
        name=name,
        texts=list(data.prompts),
        labels=pair_labels(weak, strong, both_wrong),
        test=np.asarray(test, dtype=bool),
        weak_scores=weak,
        strong_scores=strong,
        weak_models=weak_models,
        strong_model=strong_model,
        tasks=data.tasks,
        keys=keys,
    )


def training_rows(
    sets: list[LabelledSet], test: bool = False, balance: bool = True
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, soft labels, sample weights) over several sets; ``balance`` gives each set equal total weight."""
    texts: list[str] = []
    labels: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for s in sets:
        idx = s.rows(test)
        if idx.size == 0:
            continue
        texts.extend(s.texts[i] for i in idx)
        labels.append(s.labels[idx])
        weights.append(np.full(idx.size, 1.0 / idx.size if balance else 1.0))
    if not texts:
        raise DataError("no labelled rows to train on")
    w = np.concatenate(weights)
    return texts, np.concatenate(labels), w * (w.size / w.sum())


def training_domains(sets: list[LabelledSet], test: bool = False) -> list[str]:
    """The dataset name of each row of ``training_rows(sets, test)``, in the same order (for domain experts)."""
    return [s.name for s in sets for _ in range(s.rows(test).size)]
