"""Is the 0.72 macro-F1 ceiling the model or the data? Stronger, slower models on the same grouped split.

    nice python bench/classifier_teachers.py [--teacher-python bench/.venvs/teacher/bin/python] [--models ...]

Models (each a logistic regression, class-balanced, on the bench's grouped split and leave-one-chat-source-out):
``lexical`` (the shipped recipe), ``tfidf`` (scikit-learn TF-IDF word 1-2 + char_wb 2-5 grams), ``minilm`` and
``e5`` (contextual sentence embeddings computed in the side venv by bench/embed_teacher.py, cached in bench/out/),
and ``minilm+lexical`` (both feature sets side by side). Writes a markdown section to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classifier import HARD_CASES, macro_f1, prf_table

from calibroute.classify.corpus import CHAT_SOURCES, CLASSES, Example, grouped_split
from calibroute.classify.training import TrainConfig, load_training_rows
from calibroute.datasets import data_root

OUT = Path(__file__).resolve().parent / "out"
TEACHER_PY = Path(__file__).resolve().parent / ".venvs" / "teacher" / "bin" / "python"

Fitter = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train idx, test idx) -> predicted probabilities


def teacher_embeddings(name: str, texts: list[str], python: Path) -> np.ndarray:
    """Embeddings of ``texts`` by the side-venv model, cached by a hash of the texts."""
    key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:12]
    path = OUT / f"teacher-{name}-{key}.npy"
    if not path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        src = OUT / f"teacher-texts-{key}.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        script = Path(__file__).resolve().parent / "embed_teacher.py"
        subprocess.run([str(python), str(script), name, str(src), str(path)], check=True)
    return np.load(path)


def logreg(x: Any, y: np.ndarray, c: float) -> Fitter:
    from sklearn.linear_model import LogisticRegression

    def fit(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=0).fit(x[tr], y[tr])
        prob = np.zeros((te.size, len(CLASSES)))
        prob[:, model.classes_] = model.predict_proba(x[te])
        return prob

    return fit


def tfidf(texts: list[str], y: np.ndarray, c: float) -> Fitter:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def fit(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000)
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            sublinear_tf=True,
            min_df=2,
            max_features=300_000,
        )
        tr_t, te_t = [texts[i] for i in tr], [texts[i] for i in te]
        xtr = hstack([word.fit_transform(tr_t), char.fit_transform(tr_t)], format="csr")
        xte = hstack([word.transform(te_t), char.transform(te_t)], format="csr")
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=0).fit(xtr, y[tr])
        prob = np.zeros((te.size, len(CLASSES)))
        prob[:, model.classes_] = model.predict_proba(xte)
        return prob

    return fit


def evaluate(
    name: str,
    fit: Fitter,
    rows: list[Example],
    y: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
) -> tuple[str, list[str], list[str]]:
    """Summary row, per-class table, and hard-case cells (hard cases are the indices after the rows)."""
    t0 = time.perf_counter()
    hard = np.arange(len(rows), len(rows) + len(HARD_CASES))
    prob = fit(tr, np.concatenate([te, hard]))
    pred, hard_prob = prob[: te.size].argmax(1), prob[te.size :]
    no_eqa = np.asarray([rows[i].source != "expertqa" for i in te])
    line = (
        f"| {name} | {macro_f1(y[te], pred):.3f} | {(pred == y[te]).mean():.3f} | "
        f"{macro_f1(y[te][no_eqa], pred[no_eqa]):.3f} | "
    )
    loso = []
    for src in CHAT_SOURCES:
        tr_s = np.asarray([i for i, ex in enumerate(rows) if ex.source != src])
        te_s = np.asarray([i for i, ex in enumerate(rows) if ex.source == src])
        ps = fit(tr_s, te_s).argmax(1)
        loso.append(f"{(ps == y[te_s]).mean():.3f} / {macro_f1(y[te_s], ps):.3f}")
    print(f"{name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    detail = [f"**{name}**, grouped held-out, per class:", ""] + prf_table(y[te], pred) + [""]
    cells = []
    for (_, bad), p in zip(HARD_CASES, hard_prob):
        cls = CLASSES[int(p.argmax())]
        cells.append(f"{cls} {p.max():.2f}" + (" ✗" if cls in bad else ""))
    return line + " | ".join(loso) + " |", detail, cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--teacher-python", type=Path, default=TEACHER_PY)
    ap.add_argument("--models", default="lexical,tfidf,minilm,minilm+lexical,e5")
    ap.add_argument("--c", type=float, default=10.0)
    args = ap.parse_args()
    cfg = TrainConfig()
    rows = load_training_rows(args.data or data_root(), cfg)
    row_texts, hard_texts = [ex.text for ex in rows], [p for p, _ in HARD_CASES]
    texts = row_texts + hard_texts
    y = np.asarray([CLASSES.index(ex.label) for ex in rows] + [-1] * len(hard_texts))
    train, test = grouped_split(rows, 0.25, seed=cfg.seed)
    pos = {id(ex): i for i, ex in enumerate(rows)}
    tr = np.asarray([pos[id(ex)] for ex in train])
    te = np.asarray([pos[id(ex)] for ex in test])
    hashed = None
    models = args.models.split(",")
    out = [
        "| model | macro-F1 | accuracy | macro-F1 without ExpertQA rows | "
        + " | ".join(f"LOSO {s} acc. / macro-F1" for s in CHAT_SOURCES)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(CHAT_SOURCES),
    ]
    details: list[str] = []
    hard: dict[str, list[str]] = {}

    def emb(name: str) -> np.ndarray:
        parts = (
            teacher_embeddings(name, row_texts, args.teacher_python),
            teacher_embeddings(name, hard_texts, args.teacher_python),
        )
        return np.vstack(parts)

    for name in models:
        if name in ("lexical", "minilm+lexical") and hashed is None:
            hashed = cfg.featurizer().featurize(texts)
        if name == "lexical":
            fit = logreg(hashed, y, cfg.c)
        elif name == "tfidf":
            fit = tfidf(texts, y, args.c)
        elif name == "minilm+lexical":
            from scipy.sparse import csr_matrix, hstack

            fit = logreg(hstack([hashed, csr_matrix(emb("minilm"))], format="csr"), y, cfg.c)
        else:
            fit = logreg(emb(name), y, args.c)
        line, detail, hard[name] = evaluate(name, fit, rows, y, tr, te)
        out.append(line)
        details += detail
        print("\n".join(out), file=sys.stderr)
    table = [
        "| prompt | must not be | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for i, (p, bad) in enumerate(HARD_CASES):
        table.append(f"| {p[:60]} | {', '.join(sorted(bad))} | " + " | ".join(hard[m][i] for m in models) + " |")
    print("\n".join(out + [""] + table + [""] + details))


if __name__ == "__main__":
    main()
