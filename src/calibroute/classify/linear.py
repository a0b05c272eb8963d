"""Linear task classifiers over hashed lexical features and/or static embeddings.

Run time is pure numpy: a softmax over ``x @ W + b`` divided by a temperature fitted on a
held-out fold, so ``confidence`` is a calibrated probability the router's
``routing.min_confidence`` can threshold. Artifacts are ``.npz`` files (``allow_pickle=False``)
with a JSON metadata string; ``calibroute train classifier`` rebuilds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from ..types import Classification, TaskClass
from .base import uncertain
from .embedding import StaticEmbedder
from .features import HashedFeaturizer

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
STATIC_VECTORS = "classifier-static-vectors.npz"
STATIC_TOKENIZER = "classifier-static-tokenizer.json"
VARIANTS: tuple[str, ...] = ("lexical", "embedding", "combined")
SHIPPED_VARIANTS: tuple[str, ...] = ("lexical", "embedding")  # combined lost on accuracy and speed: not shipped


def artifact_name(variant: str) -> str:
    return f"classifier-{variant}.npz"


@dataclass
class LinearArtifact:
    """Everything a linear classifier needs at run time; ``meta`` records how it was trained."""

    classes: list[str]
    bias: np.ndarray
    temperature: float = 1.0
    featurizer: HashedFeaturizer | None = None
    w_hash: np.ndarray | None = None  # (n_buckets, k)
    w_emb: np.ndarray | None = None  # (dim, k)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        header = {
            "classes": self.classes,
            "temperature": self.temperature,
            "featurizer": self.featurizer.config() if self.featurizer else None,
            "meta": self.meta,
        }
        arrays: dict[str, np.ndarray] = {"header": np.array(json.dumps(header)), "bias": self.bias.astype(np.float32)}
        if self.w_hash is not None:
            arrays["w_hash"] = self.w_hash.astype(np.float16)
        if self.w_emb is not None:
            arrays["w_emb"] = self.w_emb.astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> LinearArtifact:
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                # C order: scoring gathers rows, which is several times slower on a column-major array.
                w_hash = np.ascontiguousarray(data["w_hash"], dtype=np.float32) if "w_hash" in data else None
                w_emb = np.ascontiguousarray(data["w_emb"], dtype=np.float32) if "w_emb" in data else None
                bias = data["bias"].astype(np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"cannot load classifier artifact {path}: {exc}") from None
        feat = HashedFeaturizer.from_config(header["featurizer"]) if header.get("featurizer") else None
        art = cls(header["classes"], bias, float(header["temperature"]), feat, w_hash, w_emb, header.get("meta", {}))
        art.check()
        return art

    def check(self) -> None:
        k = len(self.classes)
        if set(self.classes) - {c.value for c in TaskClass} or self.bias.shape != (k,):
            raise ArtifactError(f"classifier artifact has bad classes {self.classes} or bias shape {self.bias.shape}")
        if self.w_hash is None and self.w_emb is None:
            raise ArtifactError("classifier artifact has no weights")
        if self.w_hash is not None and (self.featurizer is None or self.w_hash.shape != (self.featurizer.n_buckets, k)):
            raise ArtifactError(f"classifier artifact: hashed weights shape {self.w_hash.shape} does not match")
        if not (self.temperature > 0):
            raise ArtifactError(f"classifier artifact: temperature must be > 0, got {self.temperature}")

    @property
    def uses_embedding(self) -> bool:
        return self.w_emb is not None


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class LinearTaskClassifier:
    """The ``Classifier`` protocol over a ``LinearArtifact``; deterministic and thread-safe."""

    def __init__(self, artifact: LinearArtifact, embedder: StaticEmbedder | None = None) -> None:
        if artifact.uses_embedding and embedder is None:
            raise ArtifactError("this classifier needs the static embedding artifact")
        if artifact.w_emb is not None and embedder is not None and artifact.w_emb.shape[0] != embedder.dim:
            raise ArtifactError(f"embedding dim {embedder.dim} does not match weights {artifact.w_emb.shape}")
        self.artifact = artifact
        self.embedder = embedder
        self.classes = [TaskClass(c) for c in artifact.classes]

    def logits(self, text: str) -> np.ndarray:
        art = self.artifact
        z = art.bias.copy()
        if art.w_hash is not None and art.featurizer is not None:
            z = art.featurizer.score(text, art.w_hash, z)
        if art.w_emb is not None and self.embedder is not None:
            z = z + self.embedder.encode(text) @ art.w_emb
        return z

    def proba(self, text: str) -> np.ndarray:
        return softmax(self.logits(text) / self.artifact.temperature)

    def classify(self, text: str, context: str | None = None) -> Classification:
        """``context`` is ignored: the lexical features read the turn alone."""
        if not isinstance(text, str):
            text = str(text)
        if not text.strip():
            return uncertain(self.classes)
        p = self.proba(text)
        best = int(np.argmax(p))
        scores = {c.value: float(p[i]) for i, c in enumerate(self.classes)}
        return Classification(task_class=self.classes[best], confidence=float(p[best]), scores=scores)


@cache
def _static_embedder(directory: str) -> StaticEmbedder:
    d = Path(directory)
    return StaticEmbedder.load(d / STATIC_VECTORS, d / STATIC_TOKENIZER)


def load_variant(variant: str, directory: Path = ARTIFACT_DIR) -> LinearTaskClassifier:
    """Load a shipped (or freshly trained) variant from ``directory``."""
    path = directory / artifact_name(variant)
    if not path.is_file():
        raise ArtifactError(f"classifier artifact missing: {path} (run `calibroute train classifier`)")
    art = LinearArtifact.load(path)
    embedder = _static_embedder(str(directory)) if art.uses_embedding else None
    return LinearTaskClassifier(art, embedder)


@cache
def lexical() -> LinearTaskClassifier:
    return load_variant("lexical")


@cache
def embedding() -> LinearTaskClassifier:
    return load_variant("embedding")
