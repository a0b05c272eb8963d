"""Train-time code for the linear task classifiers (needs scikit-learn; never imported at run time).

Recipe: load the pool, drop near-duplicates, cap rows per (source, label), hold out whole
groups (and each chat source in turn) for calibration, fit a class-balanced logistic regression,
fit a temperature on the held-out logits, then refit on everything with that temperature. Seeds are fixed: the same
data gives the same artifact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, DataError, InputError
from .corpus import CHAT_SOURCES, CLASSES, Example, balance, grouped_split, load_pool
from .embedding import StaticEmbedder
from .features import HashedFeaturizer
from .linear import (
    ARTIFACT_DIR,
    SHIPPED_VARIANTS,
    STATIC_TOKENIZER,
    STATIC_VECTORS,
    VARIANTS,
    LinearArtifact,
    LinearTaskClassifier,
    artifact_name,
    softmax,
)


@dataclass(frozen=True)
class TrainConfig:
    cap: int = 500  # rows per (source, label)
    calib_share: float = 0.2  # groups held out to fit the temperature
    c: float = 20.0  # inverse L2 strength of the logistic regression
    seed: int = 0
    n_buckets: int = 1 << 18
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    edge_words: int = 0
    # Numbers in the material a request hands over ("Extract the total from: ... $1,284.50") become one token, so
    # amounts and dates stop reading as a word problem (docs/bench-classifier.md, misroute suite).
    payload_numbers: bool = True
    # Also fit the temperature on leave-one-chat-source-out logits: live traffic looks like a chat source
    # the model has not seen, where held-out groups alone leave it overconfident (docs/bench-classifier.md).
    loso_calibration: bool = True

    def featurizer(self) -> HashedFeaturizer:
        return HashedFeaturizer(
            n_buckets=self.n_buckets,
            char_ngrams=self.char_ngrams,
            edge_words=self.edge_words,
            payload_numbers=self.payload_numbers,
        )


class FeatureCache:
    """Featurises each text once; bench runs fit many models on subsets of the same rows."""

    def __init__(self, rows: Sequence[Example], featurizer: HashedFeaturizer, embedder: StaticEmbedder | None) -> None:
        texts = [ex.text for ex in rows]
        self.rows = list(rows)
        self.featurizer = featurizer
        self.hashed = featurizer.featurize(texts)
        self.emb = embedder.encode_many(texts) if embedder is not None else None
        self.y = np.asarray([CLASSES.index(ex.label) for ex in rows])

    def matrix(self, idx: np.ndarray, variant: str) -> Any:
        from scipy.sparse import csr_matrix, hstack

        if variant == "lexical":
            return self.hashed[idx]
        if self.emb is None:
            raise ArtifactError(f"variant {variant!r} needs the static embedding")
        if variant == "embedding":
            return self.emb[idx]
        return hstack([self.hashed[idx], csr_matrix(self.emb[idx])], format="csr")


def fit_logistic(x: Any, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    if np.unique(y).size < 2:
        raise DataError("training needs prompts of at least two task classes")
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    model.fit(x, y)
    coef = np.zeros((len(CLASSES), x.shape[1]), dtype=np.float64)
    bias = np.zeros(len(CLASSES), dtype=np.float64)
    if model.coef_.shape[0] == 1:  # two classes: sklearn keeps one row, the logit of classes_[1]
        coef[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
    else:
        coef[model.classes_] = model.coef_
        bias[model.classes_] = model.intercept_
    bias[np.setdiff1d(np.arange(len(CLASSES)), model.classes_)] = -30.0  # a class never seen: never predicted
    return np.ascontiguousarray(coef.T), bias


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (temperature scaling)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(y.size), y] + 1e-12)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def _artifact(
    cache: FeatureCache, variant: str, coef: np.ndarray, bias: np.ndarray, t: float, meta: dict[str, Any]
) -> LinearArtifact:
    n_hash = cache.featurizer.n_buckets if variant != "embedding" else 0
    return LinearArtifact(
        classes=list(CLASSES),
        bias=bias.astype(np.float32),
        temperature=t,
        featurizer=cache.featurizer if n_hash else None,
        w_hash=coef[:n_hash].astype(np.float32) if n_hash else None,
        w_emb=coef[n_hash:].astype(np.float32) if variant != "lexical" else None,
        meta=meta,
    )


def train_variant(
    cache: FeatureCache, idx: np.ndarray, variant: str, cfg: TrainConfig, calibrate: bool = True
) -> LinearArtifact:
    """Fit on rows ``idx`` of the cache; temperature from held-out logits, then refit on all of them.

    Held-out logits: 20% of the groups, plus (``loso_calibration``) each chat source left out in turn.
    """
    meta = {"variant": variant, "rows": int(idx.size), "cap": cfg.cap, "c": cfg.c, "seed": cfg.seed}
    if not calibrate:  # temperature 1: enough for argmax-only evaluations
        coef, bias = fit_logistic(cache.matrix(idx, variant), cache.y[idx], cfg.c, cfg.seed)
        return _artifact(cache, variant, coef, bias, 1.0, meta)
    rows = [cache.rows[i] for i in idx]
    fit_rows, calib_rows = grouped_split(rows, cfg.calib_share, seed=cfg.seed + 1)
    pos = {id(ex): i for i, ex in zip(idx, rows)}
    fit_idx = np.asarray([pos[id(ex)] for ex in fit_rows], dtype=np.int64)
    calib_idx = np.asarray([pos[id(ex)] for ex in calib_rows], dtype=np.int64)
    held_out = [(fit_idx, calib_idx)]
    if cfg.loso_calibration:
        sources = np.asarray([ex.source for ex in rows])
        held_out += [(idx[sources != s], idx[sources == s]) for s in CHAT_SOURCES if (sources == s).any()]
    logits, labels = [], []
    for train_idx, test_idx in held_out:
        if test_idx.size and train_idx.size and np.unique(cache.y[train_idx]).size >= 2:
            coef, bias = fit_logistic(cache.matrix(train_idx, variant), cache.y[train_idx], cfg.c, cfg.seed)
            logits.append(np.asarray(cache.matrix(test_idx, variant) @ coef) + bias)
            labels.append(cache.y[test_idx])
    t = fit_temperature(np.vstack(logits), np.concatenate(labels)) if logits else 1.0
    coef, bias = fit_logistic(cache.matrix(idx, variant), cache.y[idx], cfg.c, cfg.seed)
    meta["temperature_fit_rows"] = int(sum(y.size for y in labels))
    meta["loso_calibration"] = cfg.loso_calibration
    return _artifact(cache, variant, coef, bias, t, meta)


def load_training_rows(data_dir: Path, cfg: TrainConfig) -> list[Example]:
    prompts = data_dir / "prompts" if (data_dir / "prompts").is_dir() else data_dir
    rows = balance(load_pool(prompts), cfg.cap, seed=cfg.seed)
    if not rows:
        raise DataError(f"no labelled prompts found under {prompts}")
    return rows


def ensure_static(out_dir: Path, static_model: Path | None) -> StaticEmbedder:
    """Put the static embedding into ``out_dir`` (packed from a model2vec folder, or the shipped one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vec, tok = out_dir / STATIC_VECTORS, out_dir / STATIC_TOKENIZER
    if static_model is not None:
        if not (static_model / "model.safetensors").is_file():
            raise ArtifactError(f"{static_model} is not a model2vec folder (no model.safetensors)")
        StaticEmbedder.save_from_model2vec(static_model, vec, tok)
    elif not vec.is_file():
        src_vec, src_tok = ARTIFACT_DIR / STATIC_VECTORS, ARTIFACT_DIR / STATIC_TOKENIZER
        if not src_vec.is_file():
            raise ArtifactError("no static embedding: distil one (bench/distill_static.py) and pass --static-model")
        shutil.copyfile(src_vec, vec)
        shutil.copyfile(src_tok, tok)
    return StaticEmbedder.load(vec, tok)


def _check_variants(variants: Sequence[str]) -> None:
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise InputError(f"unknown classifier variant(s) {sorted(unknown)}; known: {', '.join(VARIANTS)}")


def train_from_rows(
    rows: Sequence[Example],
    out_dir: Path,
    variants: Sequence[str],
    cfg: TrainConfig,
    embedder: StaticEmbedder | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Path]:
    """Fit ``variants`` on ``rows`` and write their artifacts into ``out_dir``."""
    _check_variants(variants)
    progress(f"featurising {len(rows)} prompts")
    cache = FeatureCache(rows, cfg.featurizer(), embedder)
    out: dict[str, Path] = {}
    for variant in variants:
        progress(f"fitting {variant}")
        art = train_variant(cache, np.arange(len(rows)), variant, cfg)
        path = out_dir / artifact_name(variant)
        art.save(path)
        LinearTaskClassifier(LinearArtifact.load(path), embedder)  # fail now, not at serve time
        out[variant] = path
    return out


def train_classifiers(
    data_dir: Path,
    out_dir: Path,
    variants: Sequence[str] = SHIPPED_VARIANTS,
    cfg: TrainConfig = TrainConfig(),
    static_model: Path | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Path]:
    """Train ``variants`` on the balanced pool under ``data_dir`` and write their artifacts into ``out_dir``."""
    _check_variants(variants)
    progress("loading prompts")
    rows = load_training_rows(data_dir, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    embedder = ensure_static(out_dir, static_model) if set(variants) - {"lexical"} else None
    return train_from_rows(rows, out_dir, variants, cfg, embedder, progress)
