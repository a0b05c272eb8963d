"""Hard vs gain labels for the cv difficulty estimator: `python bench/eval_labels.py routellm-gsm8k [routellm-mmlu]`.

Same 5 folds as `calibroute eval --router cv`; prints APGR / CPT(50%) of each label and a paired
bootstrap CI of the APGR difference over prompts. MMLU takes ~20 min (10 fits) on 2 shared cores.
"""

from __future__ import annotations

import argparse

import numpy as np

from calibroute.classify.difficulty import fit_difficulty
from calibroute.datasets import data_root
from calibroute.evaluate.learners import gain_labels, make_folds
from calibroute.evaluate.metrics import apgr, cpt, routellm_points
from calibroute.outcomes import load_dataset


def out_of_fold(texts: list[str], labels: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    logit = np.zeros(len(texts))
    for train, test in pairs:
        model = fit_difficulty([texts[i] for i in train], labels[train])
        logit[test] = model.logits_batch([texts[i] for i in test])
    return logit


def metric(score: np.ndarray, strong: np.ndarray, weak: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """APGR and CPT(50%) of escalating by ``score`` on ``rows``."""
    share, q = routellm_points(score[rows], strong[rows], weak[rows])
    wq, sq = float(weak[rows].mean()), float(strong[rows].mean())
    return apgr(share, q, wq, sq), cpt(share, q, wq, sq, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--boot", type=int, default=500)
    args = ap.parse_args()
    for name in args.datasets:
        out = load_dataset(name, data_root()).complete()
        folds = make_folds(out)
        strong, weak = out.scores[:, 0], out.scores[:, 1]  # RouteLLM sets: GPT-4 first, Mixtral second
        texts = list(out.prompts)
        scores = {
            "hard": -out_of_fold(texts, (weak >= strong).astype(float), folds.pairs),
            "gain": -out_of_fold(texts, gain_labels(strong, weak), folds.pairs),
        }

        everything = np.arange(len(texts))
        for label, s in scores.items():
            a, c50 = metric(s, strong, weak, everything)
            print(f"{name} {label}: APGR {a:.3f} CPT(50%) {100 * c50:.1f} %")
        rng = np.random.default_rng(0)
        diffs = []
        for _ in range(args.boot):
            rows = rng.integers(0, len(texts), len(texts))
            diffs.append(metric(scores["gain"], strong, weak, rows)[0] - metric(scores["hard"], strong, weak, rows)[0])
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        print(f"{name} APGR gain - hard: {np.mean(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}] (95 % paired bootstrap)")


if __name__ == "__main__":
    main()
