"""Error analysis of the grouped held-out split: is the 0.90 macro-F1 target blocked by the data?

    nice python bench/classifier_errors.py [--data DIR] [--folds 3] [--split shipped|quota]

Same pool, split and lexical recipe as bench/classifier.py (argmax only, so no temperature). Prints markdown:
the confusion matrix, errors by source and by held-out group, how many test rows carry a label their source never
shows in training, and two upper bounds: the same test rows when their groups are seen in training (k-fold over the
test rows, training on the train split plus the other folds), and the macro-F1 a model would reach if it were
perfect on every row except ExpertQA's, where it does only as well as when the ExpertQA field is seen.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classifier import macro_f1, prf_table

from calibroute.classify.corpus import CLASSES, Example, grouped_split
from calibroute.classify.training import (
    FeatureCache,
    TrainConfig,
    load_training_rows,
    train_variant,
)
from calibroute.datasets import data_root


def predict(cache: FeatureCache, tr: np.ndarray, te: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    art = train_variant(cache, tr, "lexical", cfg, calibrate=False)
    assert art.w_hash is not None
    return np.asarray(cache.matrix(te, "lexical") @ art.w_hash + art.bias).argmax(1)


def confusion(y: np.ndarray, pred: np.ndarray) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(CLASSES) + " | n |", "|---|" + "---:|" * (len(CLASSES) + 1)]
    for k, name in enumerate(CLASSES):
        counts = [int(((y == k) & (pred == j)).sum()) for j in range(len(CLASSES))]
        lines.append(f"| {name} | " + " | ".join(map(str, counts)) + f" | {int((y == k).sum())} |")
    return lines


def by_source(rows: list[Example], y: np.ndarray, pred: np.ndarray, unseen: np.ndarray) -> list[str]:
    wrong = pred != y
    lines = ["| source | test rows | errors | share of all errors | accuracy | rows with a label unseen for the source |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for src in sorted({ex.source for ex in rows}):
        m = np.asarray([ex.source == src for ex in rows])
        lines.append(
            f"| {src} | {int(m.sum())} | {int((wrong & m).sum())} | {(wrong & m).sum() / max(wrong.sum(), 1):.1%} | "
            f"{1 - (wrong & m).sum() / m.sum():.3f} | {int((unseen & m).sum())} |"
        )
    return lines


def _counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.most_common())


def by_group(rows: list[Example], y: np.ndarray, pred: np.ndarray, top: int = 12) -> list[str]:
    wrong = pred != y
    groups = Counter(ex.group for ex, w in zip(rows, wrong) if w)
    lines = ["| held-out group | test rows | errors | labels (n) | predicted as (n) |", "|---|---:|---:|---|---|"]
    for g, n_err in groups.most_common(top):
        m = np.asarray([ex.group == g for ex in rows])
        labels = Counter(CLASSES[k] for k in y[m])
        preds = Counter(CLASSES[k] for k in pred[m & wrong])
        lines.append(f"| {g} | {int(m.sum())} | {n_err} | {_counts(labels)} | {_counts(preds)} |")
    return lines


def seen_group_predictions(cache: FeatureCache, tr: np.ndarray, te: np.ndarray, cfg: TrainConfig, k: int) -> np.ndarray:
    """Predictions for ``te`` when its groups are seen: k random folds of te, each trained on tr + the other folds."""
    order = list(range(te.size))
    random.Random(cfg.seed).shuffle(order)
    folds = [np.asarray(sorted(order[i::k])) for i in range(k)]
    pred = np.zeros(te.size, dtype=np.int64)
    for f in folds:
        rest = np.setdiff1d(np.arange(te.size), f)
        pred[f] = predict(cache, np.concatenate([tr, te[rest]]), te[f], cfg)
        print(f"seen-group fold done ({f.size} rows)", file=sys.stderr)
    return pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=3, help="0: skip the seen-groups upper bound")
    ap.add_argument("--split", choices=("shipped", "quota"), default="shipped",
                    help="quota: grouped_split(count_shared=True), ExpertQA held out at ~25%%")
    args = ap.parse_args()
    cfg = TrainConfig()
    rows = load_training_rows(args.data or data_root(), cfg)
    cache = FeatureCache(rows, cfg.featurizer(), None)
    train, test = grouped_split(rows, 0.25, seed=cfg.seed, count_shared=args.split == "quota")
    pos = {id(ex): i for i, ex in enumerate(rows)}
    tr = np.asarray([pos[id(ex)] for ex in train])
    te = np.asarray([pos[id(ex)] for ex in test])
    y = cache.y[te]
    pred = predict(cache, tr, te, cfg)
    seen_pairs = {(ex.source, ex.label) for ex in train}
    unseen = np.asarray([(ex.source, ex.label) not in seen_pairs for ex in test])
    eqa = np.asarray([ex.source == "expertqa" for ex in test])
    out = [
        (
            f"Grouped held-out split: {tr.size} train / {te.size} test rows, "
            f"{len({ex.group for ex in test})} groups held out whole; featurizer {cfg.featurizer().config()}."
        ),
        "",
        f"Macro-F1 **{macro_f1(y, pred):.3f}**, accuracy {(pred == y).mean():.3f}.",
        "",
        "Confusion matrix (rows: label, columns: prediction):",
        "",
        *confusion(y, pred),
        "",
        *by_source(test, y, pred, unseen),
        "",
        (
            f"Test rows whose label never occurs in training for their source: {int(unseen.sum())} "
            f"({', '.join(sorted({f'{ex.source} {ex.label}' for ex, u in zip(test, unseen) if u}))}); "
            f"macro-F1 without them {macro_f1(y[~unseen], pred[~unseen]):.3f}."
        ),
        "",
        "Groups with the most errors:",
        "",
        *by_group(test, y, pred),
        "",
    ]
    out += [f"Without ExpertQA rows: macro-F1 {macro_f1(y[~eqa], pred[~eqa]):.3f}.", ""]
    if args.folds < 2:
        print("\n".join(out))
        return
    seen = seen_group_predictions(cache, tr, te, cfg, args.folds)
    bound = np.where(eqa, seen, y)
    out += [
        (
            f"Upper bounds. Same test rows with their groups seen in training ({args.folds}-fold over the test rows): "
            f"macro-F1 **{macro_f1(y, seen):.3f}** (ExpertQA rows alone: accuracy {(seen[eqa] == y[eqa]).mean():.3f}, "
            f"held-out {(pred[eqa] == y[eqa]).mean():.3f}). Perfect on every non-ExpertQA row, ExpertQA as well as when "
            f"its field is seen: macro-F1 **{macro_f1(y, bound):.3f}**. Without ExpertQA rows: held-out "
            f"{macro_f1(y[~eqa], pred[~eqa]):.3f}, groups seen {macro_f1(y[~eqa], seen[~eqa]):.3f}."
        ),
        "",
        "Per class with groups seen:",
        "",
        *prf_table(y, seen),
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
