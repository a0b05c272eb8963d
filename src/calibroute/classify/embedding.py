"""A static (model2vec-style) sentence embedder in plain numpy + ``tokenizers``.

The vectors come from all-MiniLM-L6-v2 distilled with model2vec (``bench/distill_static.py``),
stored as int8 with a per-row scale in an ``.npz`` (no pickle) beside the tokenizer JSON.
Encoding = mean of the token vectors, L2-normalised, as model2vec does; no torch anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from .features import clip_text

MAX_TOKENS = 512


class StaticEmbedder:
    """Token-vector lookup + mean pooling; ``dim`` floats per text."""

    def __init__(self, vectors: np.ndarray, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self.vectors = vectors.astype(np.float32)
        self.dim = int(vectors.shape[1])
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        unk = self.tokenizer.token_to_id("[UNK]")
        self.unk_id = -1 if unk is None else int(unk)

    @classmethod
    def load(cls, vectors_path: Path, tokenizer_path: Path) -> StaticEmbedder:
        try:
            with np.load(vectors_path, allow_pickle=False) as data:
                q, scale = data["q"], data["scale"]
            vectors = q.astype(np.float32) * scale.astype(np.float32)[:, None]
            tok = tokenizer_path.read_text(encoding="utf-8")
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"cannot load static embedding from {vectors_path}: {exc}") from None
        return cls(vectors, tok)

    @staticmethod
    def save_from_model2vec(model_dir: Path, vectors_path: Path, tokenizer_path: Path) -> None:
        """Pack a model2vec folder (model.safetensors + tokenizer.json) as int8 vectors + tokenizer JSON."""
        from safetensors.numpy import load_file

        tensors = load_file(str(model_dir / "model.safetensors"))
        emb = next(iter(tensors.values())).astype(np.float32)
        scale = np.abs(emb).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(emb / scale[:, None]), -127, 127).astype(np.int8)
        np.savez_compressed(vectors_path, q=q, scale=scale.astype(np.float32))
        tokenizer_path.write_text((model_dir / "tokenizer.json").read_text(encoding="utf-8"), encoding="utf-8")

    def _ids(self, text: str) -> np.ndarray:
        ids = np.asarray(
            self.tokenizer.encode(clip_text(text), add_special_tokens=False).ids[:MAX_TOKENS], dtype=np.int64
        )
        kept: np.ndarray = ids[(ids != self.unk_id) & (ids < self.vectors.shape[0])]
        return kept

    def encode(self, text: str) -> np.ndarray:
        ids = self._ids(text)
        if ids.size == 0:
            return np.zeros(self.dim, dtype=np.float32)
        v: np.ndarray = self.vectors[ids].mean(axis=0)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def encode_many(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)
