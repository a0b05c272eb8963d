"""Leave one chat source out: fine-tune the shipped recipe without it and score that source (build venv, torch).

    nice python bench/classifier_loso.py --source autoj [--epochs 1] [--out /tmp/loso-autoj]

Needs the ``finetune`` extra (``pip install -e '.[finetune]'`` in a build venv). Scores every row of the left-out
source whose two annotators agree, plus the held-out sources (LIMA + InstructionWild) for reference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from calibroute.classify.encoder_training import build_data, label_ids, train_encoder
from calibroute.classify.finetune import FinetuneConfig
from calibroute.datasets import data_root


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([2 * ((pred == k) & (y == k)).sum() / max(1, (pred == k).sum() + (y == k).sum()) for k in range(4)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a trainable chat source, e.g. autoj, sharegpt_sample, arena_hard_v2")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, help="where the run's artifacts go (default: a temporary folder)")
    args = ap.parse_args()
    data = build_data(data_root(), leave_out=args.source)
    rows = [r for r in data.split.train + data.split.dev if r.source == args.source and not r.ambiguous]
    if not rows:
        raise SystemExit(f"error: no rows of source {args.source!r}")
    out = args.out or Path(tempfile.mkdtemp(prefix=f"loso-{args.source}-"))
    clf = train_encoder(data, out, FinetuneConfig(epochs=args.epochs))
    for name, scored in ((args.source, rows), ("held-out sources", data.split.test_sources)):
        y = label_ids([r.label for r in scored])
        pred = clf.proba_turns([r.turn for r in scored]).argmax(1)
        print(f"{name}: {len(scored)} rows, macro-F1 {macro_f1(y, pred):.3f}, accuracy {(pred == y).mean():.3f}")


if __name__ == "__main__":
    main()
