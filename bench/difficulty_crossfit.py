"""Cross-fitted evaluation of the difficulty estimator's *training recipe* on RouteLLM GSM8K and MMLU.

    nice python bench/difficulty_crossfit.py [--recipe shipped ...] [--folds 5] [--boot 1000] [--out FILE]

The shipped artifact can only be scored on its held-out 20 % (259 GSM8K prompts: +-0.05 APGR).
Here every GSM8K/MMLU prompt is scored by a model trained exactly like the shipped one (same
datasets, labels, weights, features, C, near-duplicate leak removal) but without the prompt's
fold: folds are ``crc32(near-duplicate key) % K``, so fold 0 *is* the shipped held-out split and
its model is the shipped model. RouterBench/dcrouter always train on their own train split and
are scored (fold-0 model) on their test split, routerarena on everything.

Metrics are RouteLLM's (``evaluate.metrics``): APGR, CPT(50%), CPT(80%) and strong calls saved
at 95 % of GPT-4's quality, for Mixtral-8x7B -> GPT-4, routing the lowest-p prompts to GPT-4.
95 % CIs come from a bootstrap over prompts (the same resamples for every recipe, so recipe
differences are paired). Scores are cached under bench/out/difficulty_crossfit/.
"""

from __future__ import annotations

import argparse
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from calibroute.classify.difficulty import DifficultyModel, fit_difficulty
from calibroute.classify.difficulty_data import (
    TRAIN_DATASETS,
    LabelledSet,
    drop_leaks,
    training_domains,
    training_rows,
)
from calibroute.classify.difficulty_train import DifficultyConfig, load_sets
from calibroute.datasets import data_root
from calibroute.evaluate.metrics import (
    apgr,
    cpt,
    routellm_points,
    strong_calls_saved_at,
)

CACHE = Path(__file__).resolve().parent / "out" / "difficulty_crossfit"
CROSSFIT = ("routellm-gsm8k", "routellm-mmlu")
# RouteLLM's best published router per set (docs/bench-eval.md, "Against RouteLLM's published numbers").
PUBLISHED: dict[str, dict[str, float]] = {
    "routellm-gsm8k": {"apgr": 0.622, "cpt50": 0.336, "cpt80": 0.633, "saved95": 0.35},
    "routellm-mmlu": {"apgr": 0.603, "cpt50": 0.354, "saved95": 0.45},
}
HIGHER_IS_BETTER = {"apgr": True, "cpt50": False, "cpt80": False, "saved95": True}


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the shipped config plus the options under test."""

    cfg: DifficultyConfig = field(default_factory=DifficultyConfig)
    fit_kwargs: tuple[tuple[str, object], ...] = ()
    label: str = "pair"  # "pair": the shipped 1[weak >= strong] mean; "gain": (1 + weak - strong) / 2 mean
    experts: bool = False  # gated per-dataset experts (``fit_difficulty(domains=...)``)


RECIPES: dict[str, Recipe] = {
    "shipped": Recipe(),
    "gain": Recipe(label="gain"),
    "C=0.1": Recipe(cfg=DifficultyConfig(c=0.1)),
    "C=1": Recipe(cfg=DifficultyConfig(c=1.0)),
    "quant": Recipe(cfg=DifficultyConfig(features=("stats", "hash", "quant"))),
    "quant+gain": Recipe(cfg=DifficultyConfig(features=("stats", "hash", "quant")), label="gain"),
    "experts": Recipe(experts=True),
    "experts+quant": Recipe(cfg=DifficultyConfig(features=("stats", "hash", "quant")), experts=True),
}


def fold_of(keys: list[str], k: int) -> np.ndarray:
    """``crc32(key) % k``: fold 0 equals ``difficulty_data.hash_heldout`` for k = 5."""
    return np.array([zlib.crc32(t.encode("utf-8")) % k for t in keys])


def gain_label(s: LabelledSet) -> np.ndarray:
    """Mean over pairs of (1 + weak - strong) / 2 (NaN where no pair has both scores)."""
    g = (1.0 + s.weak_scores - s.strong_scores[:, None]) / 2.0
    ok = ~np.isnan(g)
    n = ok.sum(axis=1)
    return np.where(n > 0, np.where(ok, g, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def fit_recipe(sets: list[LabelledSet], recipe: Recipe) -> DifficultyModel:
    train_sets = [s for s in sets if s.name in TRAIN_DATASETS]
    if recipe.label == "gain":
        train_sets = [replace(s, labels=np.where(np.isnan(s.labels), np.nan, gain_label(s))) for s in train_sets]
    texts, labels, weights = training_rows(train_sets)
    domains = training_domains(train_sets) if recipe.experts else None
    return fit_difficulty(texts, labels, weights, features=recipe.cfg.features, c=recipe.cfg.c, domains=domains,
                          reference_texts=texts[:100], **dict(recipe.fit_kwargs))  # type: ignore[arg-type]


def crossfit_scores(root: Path, name: str, recipe: Recipe, k: int, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Per dataset: p for every prompt (cross-fitted for CROSSFIT sets, fold-0 model on the test split elsewhere)."""
    path = CACHE / f"{name.replace('=', '').replace(' ', '_')}-k{k}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    base = load_sets(root, recipe.cfg.both_wrong)
    out = {s.name: np.full(len(s.texts), np.nan) for s in base}
    folds = {s.name: fold_of(s.keys, k) for s in base if s.name in CROSSFIT}
    for f in range(k):
        log(f"{name}: fold {f + 1}/{k}")
        sets = drop_leaks([replace(s, test=folds[s.name] == f, leaked=None) if s.name in folds else s for s in base])
        model = fit_recipe(sets, recipe)
        for s in sets:
            if s.name in folds or f == 0:
                idx = np.flatnonzero(s.test)
                out[s.name][idx] = model.p_weak_suffices_batch([s.texts[i] for i in idx])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)  # type: ignore[arg-type]
    return out


def metrics(p: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict[str, float]:
    wq, sq = float(weak.mean()), float(strong.mean())
    share, quality = routellm_points(1.0 - p, strong, weak)
    return {
        "apgr": apgr(share, quality, wq, sq),
        "cpt50": cpt(share, quality, wq, sq, 0.5),
        "cpt80": cpt(share, quality, wq, sq, 0.8),
        "saved95": strong_calls_saved_at(share, quality, wq, sq),
    }


def boot_metrics(p: np.ndarray, weak: np.ndarray, strong: np.ndarray, picks: np.ndarray) -> dict[str, np.ndarray]:
    rows = [metrics(p[i], weak[i], strong[i]) for i in picks]
    return {m: np.array([r[m] for r in rows]) for m in HIGHER_IS_BETTER}


def _fmt(m: str, v: float) -> str:
    return f"{v:.3f}" if m == "apgr" else f"{v:.1%}"


def report(root: Path, names: list[str], k: int, n_boot: int, log: Callable[[str], None]) -> str:
    sets = {s.name: s for s in load_sets(root)}
    scores = {n: crossfit_scores(root, n, RECIPES[n], k, log) for n in names}
    rng = np.random.default_rng(0)
    lines = [f"## Cross-fitted ({k} folds over the near-duplicate key), Mixtral-8x7B -> GPT-4, all prompts", ""]
    lines += ["| dataset | prompts | recipe | APGR [95% CI] | CPT(50%) [95% CI] | CPT(80%) [95% CI] | calls saved@95 [95% CI] |",
              "|---|---:|---|---:|---:|---:|---:|"]
    paired: list[str] = []
    vs_pub: list[str] = []
    for ds in CROSSFIT:
        s = sets[ds]
        weak, strong = s.weak_scores[:, 0], s.strong_scores
        ok = ~np.isnan(weak) & ~np.isnan(strong)
        picks = rng.integers(0, int(ok.sum()), size=(n_boot, int(ok.sum())))
        boots = {}
        for n in names:
            p = scores[n][ds][ok]
            point, boot = metrics(p, weak[ok], strong[ok]), boot_metrics(p, weak[ok], strong[ok], picks)
            boots[n] = (point, boot)
            cells = [f"{_fmt(m, point[m])} [{_fmt(m, np.nanquantile(boot[m], 0.025))}, {_fmt(m, np.nanquantile(boot[m], 0.975))}]"
                     for m in HIGHER_IS_BETTER]
            lines.append(f"| {ds} | {int(ok.sum())} | {n} | " + " | ".join(cells) + " |")
            for m, pub in PUBLISHED[ds].items():
                better = boot[m] > pub if HIGHER_IS_BETTER[m] else boot[m] < pub
                d = boot[m] - pub
                vs_pub.append(f"| {ds} | {n} | {m} | {_fmt(m, pub)} | {_fmt(m, point[m])} | {point[m] - pub:+.3f} "
                              f"[{np.nanquantile(d, 0.025):+.3f}, {np.nanquantile(d, 0.975):+.3f}] | {np.mean(better):.0%} |")
        for n in names[1:]:
            for m in HIGHER_IS_BETTER:
                d = boots[n][1][m] - boots[names[0]][1][m]
                paired.append(f"| {ds} | {n} - {names[0]} | {m} | {boots[n][0][m] - boots[names[0]][0][m]:+.3f} "
                              f"[{np.nanquantile(d, 0.025):+.3f}, {np.nanquantile(d, 0.975):+.3f}] |")
    lines += ["", f"## Against RouteLLM's published values (bootstrap over prompts, {n_boot} resamples)", "",
              "| dataset | recipe | metric | RouteLLM | ours | ours - RouteLLM [95% CI] | resamples where ours is better |",
              "|---|---|---|---:|---:|---:|---:|", *vs_pub]
    if paired:
        lines += ["", "## Paired differences between recipes (same resamples)", "",
                  "| dataset | recipes | metric | difference [95% CI] |", "|---|---|---|---:|", *paired]
    lines += ["", "## Other datasets (fold-0 model = shipped protocol: own test split; routerarena all)", "",
              "| dataset | prompts | recipe | APGR (mean over pairs) | CPT(50%) |", "|---|---:|---|---:|---:|"]
    for ds in ("routerbench", "dcrouter", "routerarena", *CROSSFIT):
        s = sets[ds]
        idx = np.flatnonzero(s.test if ds not in CROSSFIT else fold_of(s.keys, k) == 0)
        for n in names:
            res = [metrics(scores[n][ds][idx][ok], s.weak_scores[idx, j][ok], s.strong_scores[idx][ok])
                   for j in range(s.weak_scores.shape[1])
                   for ok in [~np.isnan(s.weak_scores[idx, j]) & ~np.isnan(s.strong_scores[idx])]]
            label = ds if ds not in CROSSFIT else f"{ds} (fold 0)"
            lines.append(f"| {label} | {idx.size} | {n} | {np.mean([r['apgr'] for r in res]):.3f} | "
                         f"{np.mean([r['cpt50'] for r in res]):.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--recipe", action="append", choices=sorted(RECIPES), help="recipes to compare (first = baseline)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = report(args.data or data_root(), args.recipe or ["shipped"], args.folds, args.boot,
                  lambda msg: print(msg, flush=True))
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
