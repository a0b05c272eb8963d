"""Does a difficulty-adaptive budget beat a fixed per-class budget at equal mean tokens?

Data: tts_knowledge_budgets (7 models x SimpleQA/FRAMES, every question answered at every budget
setting). For each ladder the class's bounds are its lowest and highest setting. A policy gives
each question a hardness h in [0, 1] (its rank under a signal, shifted by c to move the mean
cost), asks ``adaptive_budget(low, high, difficulty=1 - h)`` for a Budget, and answers the
question with the ladder setting nearest that Budget; sweeping c traces accuracy vs mean tokens.

Compared at equal mean tokens against the fixed-budget curve (every question at one setting, and
the straight line between adjacent settings, i.e. a random split between them). Signals:

* estimator: the router's ``load_difficulty(NAME).p_weak_suffices(question)``;
* length: question length in characters (a trivial baseline signal);
* random: shuffled ranks (the null; mean and 2.5-97.5 % range over ``--shuffles``);
* oracle: 1 if the highest setting is right and the lowest is not (the headroom; not deployable).

Reported per ladder: AUC of the signal for "not right at the lowest setting" and for "gained by the
highest setting", and the mean accuracy gain over the fixed curve across 9 equally spaced mean-token
levels strictly inside the ladder's range (percentage points).

    nice python bench/budgets_adaptive.py [--data DIR] [--estimator default] [--shuffles 20] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from calibroute.budgets.adaptive import adaptive_budget
from calibroute.budgets.budget_files import load_budget_data
from calibroute.budgets.emit import setting_budget
from calibroute.budgets.ladder import Ladder
from calibroute.config import EFFORT_ORDER, Budget
from calibroute.errors import CalibrouteError

GRID = 1000  # hardness resolution of the setting lookup table
SHIFTS = np.linspace(-1.0, 1.0, 81)
LEVELS = 9


def snap(budget: Budget, options: list[Budget]) -> int:
    """Index of the ladder setting whose Budget is nearest ``budget`` (ties -> the cheaper one)."""

    def distance(b: Budget) -> float:
        if b.thinking != budget.thinking:
            return 1e12
        d = 0.0
        if b.thinking_budget_tokens is not None and budget.thinking_budget_tokens is not None:
            d += abs(b.thinking_budget_tokens - budget.thinking_budget_tokens)
        if b.effort and budget.effort:
            d += 1e6 * abs(EFFORT_ORDER.index(b.effort) - EFFORT_ORDER.index(budget.effort))
        return d

    return min(range(len(options)), key=lambda i: (distance(options[i]), i))


def lookup_table(ladder: Ladder) -> np.ndarray:
    """Setting index for hardness k/GRID, k = 0..GRID, via adaptive_budget between the ladder's ends."""
    options = [setting_budget(ladder, s) for s in range(len(ladder.settings))]
    low, high = options[0], options[-1]
    if low.max_output_tokens > high.max_output_tokens:
        low = low.model_copy(update={"max_output_tokens": high.max_output_tokens})
    return np.array([snap(adaptive_budget(low, high, 1.0 - k / GRID), options) for k in range(GRID + 1)])


def ranks01(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ranks scaled to [0, 1], ties broken at random."""
    order = np.lexsort((rng.random(len(x)), x))
    out = np.empty(len(x))
    out[order] = np.arange(len(x)) / max(1, len(x) - 1)
    return out


def policy_curve(ladder: Ladder, table: np.ndarray, hardness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = np.arange(ladder.n_items)
    toks, accs = [], []
    for c in SHIFTS:
        idx = table[np.rint(np.clip(hardness + c, 0.0, 1.0) * GRID).astype(int)]
        toks.append(ladder.tokens[idx, cols].mean())
        accs.append(ladder.scores[idx, cols].mean())
    order = np.argsort(toks, kind="stable")
    return np.array(toks)[order], np.array(accs)[order]


def fixed_curve(ladder: Ladder) -> tuple[np.ndarray, np.ndarray]:
    tok, acc = ladder.mean_tokens(), ladder.accuracy()
    order = np.argsort(tok, kind="stable")
    return tok[order], acc[order]


def gain_over_fixed(ladder: Ladder, curve: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean accuracy gain (points) over the fixed curve at LEVELS mean-token levels inside the range."""
    ftok, facc = fixed_curve(ladder)
    levels = np.linspace(ftok[0], ftok[-1], LEVELS + 2)[1:-1]
    return float(100 * np.mean(np.interp(levels, *curve) - np.interp(levels, ftok, facc)))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties count half."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="stable")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # average ranks of ties
        m = allv == v
        ranks[m] = ranks[m].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def evaluate(ladder: Ladder, p_weak: np.ndarray | None, shuffles: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    table = lookup_table(ladder)
    right = ladder.correct()
    gained = right[-1] & ~right[0]
    signals: dict[str, np.ndarray] = {"length": np.array([len(t) for t in ladder.texts or ()], dtype=float)}
    if p_weak is not None:
        signals["estimator"] = 1.0 - p_weak
    signals["oracle"] = gained.astype(float)
    row: dict[str, object] = {"ladder": ladder.label, "n": ladder.n_items, "bounds": f"{ladder.settings[0]} .. {ladder.settings[-1]}"}
    row["used"] = "/".join(ladder.settings[i] for i in sorted(set(table.tolist())))
    for name, hard in signals.items():
        row[f"{name}_gain"] = gain_over_fixed(ladder, policy_curve(ladder, table, ranks01(hard, rng)))
        if name != "oracle":
            row[f"{name}_auc_wrong_low"] = auc(hard, ~right[0])
            row[f"{name}_auc_gained"] = auc(hard, gained)
    null = [gain_over_fixed(ladder, policy_curve(ladder, table, rng.permutation(ladder.n_items) / max(1, ladder.n_items - 1))) for _ in range(shuffles)]
    row["random_gain"] = float(np.mean(null))
    row["random_lo"], row["random_hi"] = (float(v) for v in np.quantile(null, [0.025, 0.975]))
    return row


def markdown(rows: list[dict[str, object]], with_estimator: bool) -> str:
    cols = ["ladder", "n", "bounds", "used"]
    if with_estimator:
        cols += ["estimator_auc_wrong_low", "estimator_auc_gained", "estimator_gain"]
    cols += ["length_auc_gained", "length_gain", "random_gain", "random_lo", "random_hi", "oracle_gain"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:+.2f}" if c.endswith(("gain", "lo", "hi")) else f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    means = {c: float(np.mean([float(str(r[c])) for r in rows])) for c in cols[4:]}
    cells = [f"{means[c]:.3f}" if "auc" in c else f"{means[c]:+.2f}" for c in cols[4:]]
    lines.append("| **mean** | | | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="tts_knowledge_budgets folder (default: shared data)")
    ap.add_argument("--estimator", default="default", help="difficulty estimator registry name ('' to skip)")
    ap.add_argument("--shuffles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    try:
        if args.data is None:
            from calibroute.datasets import data_root

            args.data = data_root() / "tts_knowledge_budgets"
        ladders = [lad for lad in load_budget_data(args.data) if lad.texts is not None]
        est = None
        if args.estimator:
            from calibroute.classify import load_difficulty

            try:
                est = load_difficulty(args.estimator)
            except CalibrouteError as exc:
                print(f"note: estimator {args.estimator!r} unavailable ({exc}); reporting the other signals only", file=sys.stderr)
    except CalibrouteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    cache: dict[str, float] = {}
    rows = []
    for i, ladder in enumerate(ladders):
        p_weak = None
        if est is not None:
            p_weak = np.array([cache.setdefault(t, est.p_weak_suffices(t)) for t in ladder.texts or ()])
        rows.append(evaluate(ladder, p_weak, args.shuffles, args.seed + i))
        print(f"[{i + 1}/{len(ladders)}] {ladder.label}", file=sys.stderr)
    table = markdown(rows, est is not None)
    print(table)
    if est is not None:
        vals = np.array(list(cache.values()))
        print(f"estimator p_weak_suffices over {len(vals)} questions: mean {vals.mean():.3f}, sd {vals.std():.3f}, "
              f"5-95% {np.quantile(vals, 0.05):.3f}..{np.quantile(vals, 0.95):.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
