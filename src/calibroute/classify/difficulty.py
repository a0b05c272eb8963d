"""The difficulty estimator: P(a cheaper model answers as well as a stronger one), from the prompt alone.

A logistic regression over the shared text features (``features.py``: standardised text
statistics, optionally hashed n-grams; optionally the classifier's static embedding). Run time is
pure numpy. ``threshold_for_share`` is calibrated like RouteLLM's ``calibrate_threshold.py``: the
``share`` quantile of the estimator's scores over a reference prompt set that looks like real
traffic, stored in the artifact as a fine quantile table. Artifacts are ``.npz`` files
(``allow_pickle=False``) with a JSON header; ``calibroute train difficulty`` rebuilds them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, InputError
from .difficulty_parts import (
    N_FOLD,
    QUANT_NAMES,
    DomainExperts,
    f16,
    fit_experts,
    quantity_stats,
)
from .embedding import StaticEmbedder
from .features import STAT_NAMES, HashedFeaturizer, text_stats

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
ARTIFACT_NAME = "difficulty.npz"
N_QUANTILES = 1001  # quantiles of p at shares 0, 0.001, ..., 1
FEATURE_KINDS: tuple[str, ...] = ("stats", "hash", "embedding", "quant")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    return out


def _embedder() -> StaticEmbedder:
    """The task classifier's static embedding (shared, loaded once per process)."""
    from .linear import ARTIFACT_DIR as CLASSIFIER_DIR
    from .linear import _static_embedder

    return _static_embedder(str(CLASSIFIER_DIR))


@dataclass
class DifficultyModel:
    """Weights over the chosen feature kinds plus the reference quantile table."""

    bias: float
    stats_mean: np.ndarray
    stats_scale: np.ndarray
    w_stats: np.ndarray
    quantiles: np.ndarray  # N_QUANTILES non-decreasing values of p on the reference set
    featurizer: HashedFeaturizer | None = None
    w_hash: np.ndarray | None = None  # (n_buckets,)
    w_emb: np.ndarray | None = None  # (dim,)
    quant_mean: np.ndarray | None = None  # (len(QUANT_NAMES),) with quant_scale and w_quant: the "quant" kind
    quant_scale: np.ndarray | None = None
    w_quant: np.ndarray | None = None
    experts: DomainExperts | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        n = len(STAT_NAMES)
        if self.w_stats.shape != (n,) or self.stats_mean.shape != (n,) or self.stats_scale.shape != (n,):
            raise ArtifactError(f"difficulty artifact: stats weights must have shape ({n},), got {self.w_stats.shape}")
        if self.quantiles.ndim != 1 or self.quantiles.size < 2 or np.any(np.diff(self.quantiles) < 0):
            raise ArtifactError("difficulty artifact: quantile table must be a non-decreasing vector")
        if self.w_hash is not None and (self.featurizer is None or self.w_hash.shape != (self.featurizer.n_buckets,)):
            raise ArtifactError("difficulty artifact: hashed weights do not match the featurizer")
        quant = (self.quant_mean, self.quant_scale, self.w_quant)
        if any(a is not None for a in quant) and any(a is None or a.shape != (len(QUANT_NAMES),) for a in quant):
            raise ArtifactError(f"difficulty artifact: quantity weights must have shape ({len(QUANT_NAMES)},)")
        if self.experts is not None and (self.featurizer is None or self.experts.n_dense != self._n_dense()):
            raise ArtifactError("difficulty artifact: domain experts do not match the model's features")
        if not math.isfinite(self.bias):
            raise ArtifactError("difficulty artifact: bias is not finite")

    def _n_dense(self) -> int:
        return len(STAT_NAMES) + (0 if self.w_quant is None else len(QUANT_NAMES))

    # ---- scoring -------------------------------------------------------------------------

    def logits_batch(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        dense = ((text_stats(texts) - self.stats_mean) / self.stats_scale).astype(np.float64)
        z: np.ndarray = dense @ self.w_stats.astype(np.float64) + self.bias
        if self.w_quant is not None and self.quant_mean is not None and self.quant_scale is not None:
            quant = ((quantity_stats(texts) - self.quant_mean) / self.quant_scale).astype(np.float64)
            z += quant @ self.w_quant.astype(np.float64)
            dense = np.hstack([dense, quant])
        sparse = [self.featurizer.sparse(t) for t in texts] if self.featurizer is not None else []
        if self.w_hash is not None:
            for i, (idx, vals) in enumerate(sparse):
                z[i] += float(vals @ self.w_hash[idx])
        if self.experts is not None:
            z += self.experts.logits(dense, sparse)
        if self.w_emb is not None:
            emb = _embedder()
            z += np.stack([emb.encode(t) for t in texts]) @ self.w_emb if texts else 0.0
        return z

    def p_weak_suffices_batch(self, texts: Sequence[str]) -> np.ndarray:
        """P(cheaper model suffices) for each text, in [0, 1]."""
        return _sigmoid(self.logits_batch(texts))

    def p_weak_suffices(self, text: str) -> float:
        return float(self.p_weak_suffices_batch([text])[0])

    def threshold_for_share(self, strong_share: float) -> float:
        """The p threshold below which ``strong_share`` of the reference traffic falls (escalation: p < threshold)."""
        share = float(strong_share)
        if not 0.0 <= share <= 1.0:
            raise InputError(f"strong_share must be in [0, 1], got {strong_share}")
        if share == 0.0:
            return 0.0
        if share == 1.0:
            return 1.0
        grid = np.linspace(0.0, 1.0, self.quantiles.size)
        return float(np.interp(share, grid, self.quantiles))

    def strong_share_at(self, threshold: float) -> float:
        """The inverse: share of reference traffic with p below ``threshold`` (to 1 / N_QUANTILES)."""
        below = int(np.searchsorted(self.quantiles, float(threshold), side="left"))
        return min(1.0, below / (self.quantiles.size - 1))

    def with_reference(self, reference_texts: Sequence[str]) -> DifficultyModel:
        """A copy with the quantile table recalibrated on another reference prompt set (same weights)."""
        if not reference_texts:
            raise InputError("reference prompt set is empty")
        p = self.p_weak_suffices_batch(reference_texts)
        quantiles = np.quantile(p, np.linspace(0.0, 1.0, N_QUANTILES))
        return replace(self, quantiles=quantiles, meta={**self.meta, "n_reference": len(reference_texts)})

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        header: dict[str, Any] = {
            "bias": self.bias,
            "featurizer": self.featurizer.config() if self.featurizer else None,
            "stat_names": list(STAT_NAMES),
            "meta": self.meta,
        }
        if self.experts is not None:  # only then: artifacts without experts stay byte-identical to older builds
            header["domains"] = {"names": list(self.experts.names), "n_dense": self.experts.n_dense, "n_fold": self.experts.n_fold}
        arrays: dict[str, np.ndarray] = {
            "header": np.array(json.dumps(header, sort_keys=True)),
            "stats_mean": self.stats_mean.astype(np.float32),
            "stats_scale": self.stats_scale.astype(np.float32),
            "w_stats": self.w_stats.astype(np.float32),
            "quantiles": self.quantiles.astype(np.float64),
        }
        if self.w_hash is not None:
            arrays["w_hash"] = self.w_hash.astype(np.float16)
        if self.w_emb is not None:
            arrays["w_emb"] = self.w_emb.astype(np.float32)
        if self.w_quant is not None and self.quant_mean is not None and self.quant_scale is not None:
            arrays.update(quant_mean=self.quant_mean.astype(np.float32), quant_scale=self.quant_scale.astype(np.float32),
                          w_quant=self.w_quant.astype(np.float32))
        if self.experts is not None:
            arrays["gate_w"] = self.experts.gate_w.astype(np.float16)
            arrays["gate_b"] = self.experts.gate_b.astype(np.float32)
            arrays["expert_w"] = self.experts.expert_w.astype(np.float16)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> DifficultyModel:
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"difficulty artifact missing: {path} (run `calibroute train difficulty`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in data.files if k != "header"}
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"cannot load difficulty artifact {path}: {exc}") from None
        if header.get("stat_names") != list(STAT_NAMES):
            raise ArtifactError(f"difficulty artifact {path} was built for other text statistics; retrain it")
        try:
            domains = header.get("domains")
            experts = None
            if domains:
                experts = DomainExperts(
                    names=tuple(domains["names"]),
                    n_dense=int(domains["n_dense"]),
                    n_fold=int(domains["n_fold"]),
                    gate_w=arrays["gate_w"].astype(np.float32),
                    gate_b=arrays["gate_b"].astype(np.float32),
                    expert_w=arrays["expert_w"].astype(np.float32),
                )
            return cls(
                bias=float(header["bias"]),
                stats_mean=arrays["stats_mean"].astype(np.float32),
                stats_scale=arrays["stats_scale"].astype(np.float32),
                w_stats=arrays["w_stats"].astype(np.float32),
                quantiles=arrays["quantiles"].astype(np.float64),
                featurizer=HashedFeaturizer.from_config(header["featurizer"]) if header.get("featurizer") else None,
                w_hash=arrays["w_hash"].astype(np.float32) if "w_hash" in arrays else None,
                w_emb=arrays["w_emb"].astype(np.float32) if "w_emb" in arrays else None,
                quant_mean=arrays["quant_mean"].astype(np.float32) if "quant_mean" in arrays else None,
                quant_scale=arrays["quant_scale"].astype(np.float32) if "quant_scale" in arrays else None,
                w_quant=arrays["w_quant"].astype(np.float32) if "w_quant" in arrays else None,
                experts=experts,
                meta=dict(header.get("meta", {})),
            )
        except KeyError as exc:
            raise ArtifactError(f"difficulty artifact {path} lacks {exc}") from None


# ---- training ------------------------------------------------------------------------------


def _design(texts: Sequence[str], kinds: tuple[str, ...], featurizer: HashedFeaturizer, dense: np.ndarray) -> Any:
    """[dense (standardised stats and quantities), hashed n-grams, embedding] as one CSR matrix."""
    from scipy.sparse import csr_matrix, hstack

    blocks: list[Any] = [csr_matrix(dense)]
    if "hash" in kinds:
        blocks.append(featurizer.featurize(texts))
    if "embedding" in kinds:
        blocks.append(csr_matrix(np.stack([_embedder().encode(t) for t in texts])))
    return hstack(blocks).tocsr()


def fit_difficulty(
    texts: list[str],
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    features: tuple[str, ...] = ("stats", "hash"),
    c: float = 1.0,
    featurizer: HashedFeaturizer | None = None,
    reference_texts: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
    gate_c: float = 1.0,
    n_fold: int = N_FOLD,
    meta: dict[str, Any] | None = None,
) -> DifficultyModel:
    """Fit on (text, label) with labels in [0, 1] (soft labels allowed: 1 = the cheaper model suffices).

    Soft labels are fitted exactly by duplicating each row as a positive with weight ``w*y`` and
    a negative with weight ``w*(1-y)``. The quantile table comes from ``reference_texts`` (or
    the training texts if none). ``domains`` (one name per text, e.g. its dataset) adds gated
    per-domain experts (``DomainExperts``; the gate's inverse regularisation is ``gate_c``); at
    run time the domain is inferred from the text. Deterministic for the same inputs. Needs
    scikit-learn.
    """
    from scipy.sparse import hstack, vstack
    from sklearn.linear_model import LogisticRegression

    unknown = set(features) - set(FEATURE_KINDS)
    if unknown or "stats" not in features:
        raise InputError(f"features must include 'stats' and come from {FEATURE_KINDS}; got {features}")
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (len(texts),) or np.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise InputError("labels must be one finite value in [0, 1] per text")
    if len(texts) < 2 or y.min() == y.max():
        raise InputError("need at least two texts and both label values to fit")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    feat = featurizer if featurizer is not None else HashedFeaturizer(n_buckets=1 << 18)
    stats = text_stats(texts)
    mu, sd = stats.mean(axis=0), stats.std(axis=0) + 1e-6
    dense = (stats - mu) / sd
    quant = None
    if "quant" in features:
        q = quantity_stats(texts)
        quant = (q.mean(axis=0), q.std(axis=0) + 1e-6)
        dense = np.hstack([dense, (q - quant[0]) / quant[1]])
    x = _design(texts, features, feat, dense)
    experts = None
    if domains is not None:
        if "hash" not in features or len(domains) != len(texts):
            raise InputError("domain experts need the 'hash' feature and one domain per text")
        hashed = x[:, dense.shape[1] : dense.shape[1] + feat.n_buckets]
        experts, block = fit_experts(dense, hashed, domains, w, gate_c, n_fold)
        x = hstack([x, block]).tocsr()
    pos, neg = w * y, w * (1.0 - y)
    keep_pos, keep_neg = pos > 0, neg > 0
    x2 = vstack([x[keep_pos], x[keep_neg]]).tocsr()
    y2 = np.r_[np.ones(int(keep_pos.sum())), np.zeros(int(keep_neg.sum()))]
    w2 = np.r_[pos[keep_pos], neg[keep_neg]]
    clf = LogisticRegression(C=c, max_iter=3000, tol=1e-6).fit(x2, y2, sample_weight=w2 * (w2.size / w2.sum()))
    coef = clf.coef_[0]
    n_stats = len(STAT_NAMES)
    w_hash = w_emb = None
    offset = dense.shape[1]
    if "hash" in features:
        w_hash = f16(coef[offset : offset + feat.n_buckets])
        offset += feat.n_buckets
    if "embedding" in features:
        dim = x.shape[1] - offset - (0 if experts is None else experts.expert_w.size)
        w_emb = coef[offset : offset + dim].astype(np.float32)
        offset += dim
    if experts is not None:
        experts = replace(experts, expert_w=f16(coef[offset:].reshape(len(experts.names), -1).T))
    model = DifficultyModel(
        bias=float(clf.intercept_[0]),
        stats_mean=mu.astype(np.float32),
        stats_scale=sd.astype(np.float32),
        w_stats=coef[:n_stats].astype(np.float32),
        quantiles=np.linspace(0.0, 1.0, N_QUANTILES),
        featurizer=feat if "hash" in features else None,
        w_hash=w_hash,
        w_emb=w_emb,
        quant_mean=None if quant is None else quant[0].astype(np.float32),
        quant_scale=None if quant is None else quant[1].astype(np.float32),
        w_quant=None if quant is None else coef[n_stats : dense.shape[1]].astype(np.float32),
        experts=experts,
        meta={"features": list(features), "c": c, "n_train": len(texts), **({"gate_c": gate_c} if experts else {}), **(meta or {})},
    )
    return model.with_reference(reference_texts if reference_texts is not None else texts)


@cache
def default() -> DifficultyModel:
    """The shipped estimator (``artifacts/difficulty.npz``)."""
    return DifficultyModel.load(ARTIFACT_DIR / ARTIFACT_NAME)


__all__ = ["ARTIFACT_NAME", "QUANT_NAMES", "DifficultyModel", "DomainExperts", "default", "fit_difficulty", "quantity_stats"]
