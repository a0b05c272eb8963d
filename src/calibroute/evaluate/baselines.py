"""The learned baselines RouteLLM compares against: kNN on embeddings and matrix factorisation.

Both predict a P x M matrix of expected scores from prompt embeddings; strategies turn that
into routing choices. Embeddings are the classifier's shipped static (model2vec-distilled
all-MiniLM-L6-v2) vectors: no torch, no download.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ArtifactError

Progress = Callable[[int], None]


def embed(texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
    """L2-normalised static sentence embeddings (P x d), batched through the fast tokenizer."""
    from ..classify.embedding import MAX_TOKENS
    from ..classify.features import clip_text
    from ..classify.linear import ARTIFACT_DIR, _static_embedder

    try:
        emb = _static_embedder(str(ARTIFACT_DIR))
    except ArtifactError:
        raise
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    step = 1024
    for start in range(0, len(texts), step):
        chunk = [clip_text(t) for t in texts[start : start + step]]
        for i, enc in enumerate(emb.tokenizer.encode_batch(chunk, add_special_tokens=False)):
            ids = np.asarray(enc.ids[:MAX_TOKENS], dtype=np.int64)
            ids = ids[(ids != emb.unk_id) & (ids < emb.vectors.shape[0])]
            if ids.size:
                v = emb.vectors[ids].mean(axis=0)
                n = float(np.linalg.norm(v))
                out[start + i] = v / n if n > 0 else v
        if progress:
            progress(len(chunk))
    return out


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 20) -> np.ndarray:
    """Mean score of the ``k`` most cosine-similar training prompts, per model (RouterBench/RouteLLM kNN)."""
    k = max(1, min(k, len(train_x)))
    y = np.nan_to_num(train_y, nan=float(np.nanmean(train_y)))
    out = np.zeros((len(test_x), train_y.shape[1]))
    for start in range(0, len(test_x), 2048):
        sims = test_x[start : start + 2048] @ train_x.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[start : start + 2048] = y[idx].mean(axis=1)
    return out


def mf_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    dim: int = 16,
    epochs: int = 120,
    lr: float = 0.1,
    l2: float = 1e-4,
    seed: int = 0,
) -> np.ndarray:
    """Matrix factorisation as in RouteLLM's ``mf`` router, fitted pointwise on observed scores.

    score(q, m) = sigmoid(v_m . (W e_q) + b_m): a learned projection W of the prompt embedding
    e_q and one vector v_m per model. RouteLLM fits the same bilinear form to pairwise
    (Bradley-Terry) preferences; here every (prompt, model) score is a label, which for two
    models carries the same information plus each model's base rate. Full-batch Adam, numpy only.
    """
    rng = np.random.default_rng(seed)
    train_x = train_x.astype(np.float32)
    n, d = train_x.shape
    m = train_y.shape[1]
    mask = ~np.isnan(train_y)
    y = np.nan_to_num(train_y)
    params = {
        "W": rng.normal(0, 1 / np.sqrt(d), (d, dim)).astype(np.float32),
        "V": rng.normal(0, 1 / np.sqrt(dim), (m, dim)).astype(np.float32),
        "b": np.log(np.clip(np.nanmean(train_y, 0), 0.02, 0.98) / (1 - np.clip(np.nanmean(train_y, 0), 0.02, 0.98))),
    }
    mom = {k: np.zeros_like(v) for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    count = max(1, int(mask.sum()))
    for step in range(1, epochs + 1):
        h = train_x @ params["W"]  # n x dim
        logits = h @ params["V"].T + params["b"]
        p = 1.0 / (1.0 + np.exp(-logits))
        g = (np.where(mask, p - y, 0.0) / count).astype(np.float32)  # dLoss/dlogits for cross-entropy on soft labels
        grads = {
            "V": g.T @ h + l2 * params["V"],
            "W": train_x.T @ (g @ params["V"]) + l2 * params["W"],
            "b": g.sum(axis=0),
        }
        for key, grad in grads.items():
            mom[key] = 0.9 * mom[key] + 0.1 * grad
            vel[key] = 0.999 * vel[key] + 0.001 * grad**2
            mhat = mom[key] / (1 - 0.9**step)
            vhat = vel[key] / (1 - 0.999**step)
            params[key] -= lr * mhat / (np.sqrt(vhat) + 1e-8)
    logits = (test_x @ params["W"]) @ params["V"].T + params["b"]
    out: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
    return out
