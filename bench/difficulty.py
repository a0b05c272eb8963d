"""Benchmark the difficulty estimator on held-out prompts of the outcome datasets.

    nice python bench/difficulty.py [--data DIR] [--variants] [--out docs/bench-difficulty.md]

Scores the shipped artifact (trained on training rows only) on each dataset's held-out rows:
AUROC of p for the label "weak score >= strong score" (mean over the dataset's pairs), a
task-prior baseline (the training-set mean label of the prompt's task/subject: information the
router does not have), RouteLLM's APGR of the routing curve (random = 0.5), quality at fixed
strong shares, how well ``threshold_for_share`` hits its target share, and latency.
``--variants`` also retrains and compares other feature sets (slow: minutes each).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from sklearn.metrics import roc_auc_score

from calibroute.classify.difficulty import DifficultyModel, default, fit_difficulty
from calibroute.classify.difficulty_data import TRAIN_DATASETS, LabelledSet, hash_heldout, training_rows
from calibroute.classify.difficulty_train import DifficultyConfig, load_sets, reference_prompts, train_difficulty
from calibroute.datasets import data_root
from calibroute.evaluate.metrics import apgr, cpt, oracle_share_curve, routellm_points

SHARES = (0.1, 0.2, 0.3, 0.5)
VARIANTS: dict[str, DifficultyConfig] = {
    "stats": DifficultyConfig(features=("stats",), c=1.0),
    "stats+hash C=1": DifficultyConfig(c=1.0),
    "stats+hash C=0.3 (shipped)": DifficultyConfig(),
    "stats+embedding": DifficultyConfig(features=("stats", "embedding")),
    "stats+hash+embedding": DifficultyConfig(features=("stats", "hash", "embedding")),
    "stats+hash, both-wrong dropped": DifficultyConfig(both_wrong="drop"),
}


def _pairs(s: LabelledSet, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weak, strong) score vectors on rows ``idx`` for each pair of the set."""
    return [(s.weak_scores[idx, k], s.strong_scores[idx]) for k in range(s.weak_scores.shape[1])]


def _pair_ok(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    return ~np.isnan(weak) & ~np.isnan(strong)


def auroc(s: LabelledSet, idx: np.ndarray, p: np.ndarray) -> float:
    """Mean over pairs of AUROC(p, 1[weak >= strong])."""
    out = []
    for weak, strong in _pairs(s, idx):
        ok = _pair_ok(weak, strong)
        y = (weak[ok] >= strong[ok]).astype(int)
        if 0 < y.sum() < y.size:
            out.append(roc_auc_score(y, p[ok]))
    return float(np.mean(out)) if out else float("nan")


def auroc_ci(s: LabelledSet, idx: np.ndarray, p: np.ndarray, n_boot: int = 200) -> tuple[float, float]:
    """95 % bootstrap interval of ``auroc`` over held-out prompts (fixed seed)."""
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, idx.size, idx.size)
        vals.append(auroc(s, idx[pick], p[pick]))
    lo, hi = np.nanquantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def routing(s: LabelledSet, idx: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(APGR, CPT(50%)) of sending the lowest-p prompts to the strong model, mean over pairs."""
    ap, c50 = [], []
    for weak, strong in _pairs(s, idx):
        ok = _pair_ok(weak, strong)
        if strong[ok].mean() <= weak[ok].mean():
            continue  # no gap to recover for this pair on these rows
        share, quality = routellm_points(1.0 - p[ok], strong[ok], weak[ok])
        ap.append(apgr(share, quality, weak[ok].mean(), strong[ok].mean()))
        c50.append(cpt(share, quality, weak[ok].mean(), strong[ok].mean(), 0.5))
    return (float(np.mean(ap)), float(np.mean(c50))) if ap else (float("nan"), float("nan"))


def task_prior(s: LabelledSet, idx: np.ndarray) -> np.ndarray | None:
    """The training-set mean label of each held-out prompt's task (None without tasks or training rows)."""
    if s.tasks is None or len(set(s.tasks)) < 2:
        return None
    train = s.rows(False)
    if train.size == 0:
        return None
    means: dict[str, list[float]] = {}
    for i in train:
        means.setdefault(s.tasks[i], []).append(float(s.labels[i]))
    overall = float(np.mean(s.labels[train]))
    return np.array([np.mean(means.get(s.tasks[i], [overall])) for i in idx])


def quality_at_shares(s: LabelledSet, idx: np.ndarray, p: np.ndarray) -> list[str]:
    weak, strong = s.weak_scores[idx, 0], s.strong_scores[idx]
    order = np.argsort(p, kind="stable")  # lowest p first: escalated first
    rows = []
    oracle = oracle_share_curve(strong, weak, np.array(SHARES))
    for k, share in enumerate(SHARES):
        pick = np.zeros(idx.size, dtype=bool)
        pick[order[: int(round(share * idx.size))]] = True
        routed = np.where(pick, strong, weak).mean()
        rand = weak.mean() + share * (strong.mean() - weak.mean())
        rows.append(f"| {s.name} | {share:.0%} | {routed:.4f} | {rand:.4f} | {oracle[k]:.4f} |")
    return rows


def evaluate(model: DifficultyModel, sets: list[LabelledSet]) -> dict[str, tuple[float, float, float]]:
    out = {}
    for s in sets:
        idx = s.rows(True)
        p = model.p_weak_suffices_batch([s.texts[i] for i in idx])
        a, (g, c) = auroc(s, idx, p), routing(s, idx, p)
        out[s.name] = (a, g, c)
    return out


def unseen_subjects(sets: list[LabelledSet], cfg: DifficultyConfig = DifficultyConfig()) -> list[str]:
    """MMLU with whole subjects held out (crc32(subject) % 5 == 0): no subject-difficulty prior to lean on."""
    mmlu = next(s for s in sets if s.name == "routellm-mmlu")
    assert mmlu.tasks is not None
    unseen = hash_heldout(mmlu.tasks)
    others = [s for s in sets if s.name in TRAIN_DATASETS and s.name != mmlu.name]
    texts, labels, weights = training_rows([replace(mmlu, test=mmlu.test | unseen), *others])
    model = fit_difficulty(texts, labels, weights, features=cfg.features, c=cfg.c)
    idx = np.flatnonzero(unseen & ~np.isnan(mmlu.labels))  # none of these subjects was trained on
    p = model.p_weak_suffices_batch([mmlu.texts[i] for i in idx])
    g, c50 = routing(mmlu, idx, p)
    n_subj = len({mmlu.tasks[i] for i in idx})
    return [
        "",
        "## MMLU with unseen subjects",
        "",
        f"Retrained without {n_subj} whole MMLU subjects (crc32(subject) % 5 == 0); scored on all their {idx.size} prompts:",
        f"AUROC {auroc(mmlu, idx, p):.3f}, APGR {g:.3f}, CPT(50%) {c50:.1%}.",
    ]


def report(root: Path, variants: bool) -> str:
    sets = load_sets(root)
    model = default()
    lines = ["## Held-out AUROC and routing (shipped artifact)", ""]
    lines += [
        "| dataset | held-out prompts | pairs (weak -> strong) | weak suffices | AUROC [95% CI] | task-prior AUROC | APGR | CPT(50%) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    probs: dict[str, np.ndarray] = {}
    for s in sets:
        idx = s.rows(True)
        p = model.p_weak_suffices_batch([s.texts[i] for i in idx])
        probs[s.name] = p
        prior = task_prior(s, idx)
        prior_auc = "n/a" if prior is None else f"{auroc(s, idx, prior):.3f}"
        g, c = routing(s, idx, p)
        lo, hi = auroc_ci(s, idx, p)
        pairs = ", ".join(m.split("/")[-1] for m in s.weak_models) + f" -> {s.strong_model.split('/')[-1]}"
        lines.append(
            f"| {s.name} | {idx.size} | {pairs} | {np.mean(s.labels[idx]):.2f} | {auroc(s, idx, p):.3f} [{lo:.2f}, {hi:.2f}] | {prior_auc} | {g:.3f} | {c:.1%} |"
        )
    lines += ["", "Random routing: AUROC 0.5, APGR 0.5, CPT(50%) 50 %.", ""]
    lines += ["## Quality at a fixed share of strong calls (first weak model of the pair)", ""]
    lines += ["| dataset | strong share | routed by p | random | oracle |", "|---|---:|---:|---:|---:|"]
    for s in sets:
        if s.name.startswith("routellm"):
            lines += quality_at_shares(s, s.rows(True), probs[s.name])
    lines += ["", "## Does `threshold_for_share` hit its target?", ""]
    ref = reference_prompts(root / "prompts")
    p_ref = model.p_weak_suffices_batch(ref)
    lines += ["| target share | threshold | reference set | " + " | ".join(s.name for s in sets) + " |"]
    lines += ["|---:|---:|---:|" + "---:|" * len(sets)]
    for share in SHARES:
        t = model.threshold_for_share(share)
        got = [f"{np.mean(probs[s.name] < t):.1%}" for s in sets]
        lines.append(f"| {share:.0%} | {t:.3f} | {np.mean(p_ref < t):.1%} | " + " | ".join(got) + " |")
    lines += ["", "## Latency (one prompt, `p_weak_suffices`)", ""]
    sample = ref[:300]
    model.p_weak_suffices(sample[0])
    times = []
    for text in sample:
        t0 = time.perf_counter()
        model.p_weak_suffices(text)
        times.append(time.perf_counter() - t0)
    lines.append(f"p50 {np.median(times) * 1e3:.3f} ms, p99 {np.quantile(times, 0.99) * 1e3:.3f} ms over {len(sample)} reference prompts")
    if variants:
        lines += ["", "## Feature variants (each retrained on the training rows)", ""]
        names = [s.name for s in sets]
        lines += ["| variant | " + " | ".join(f"{n} AUROC / APGR" for n in names) + " |", "|---|" + "---:|" * len(names)]
        for label, cfg in VARIANTS.items():
            res = evaluate(train_difficulty(root, cfg), sets)
            lines.append(f"| {label} | " + " | ".join(f"{res[n][0]:.3f} / {res[n][1]:.3f}" for n in names) + " |")
        lines += unseen_subjects(sets)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--variants", action="store_true", help="also retrain and compare feature variants (slow)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = report(args.data or data_root(), args.variants)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
