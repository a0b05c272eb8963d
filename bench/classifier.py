"""Benchmark the task classifiers: grouped held-out accuracy, leave-one-chat-source-out,
calibration and the confidence threshold, hard cases, latency, and the no-torch import check.

    nice python bench/classifier.py [--data DIR] [--static DIR] [--out docs/bench-classifier.md]

Writes a markdown report (stdout unless --out). Needs scikit-learn (train-time extra).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from calibroute.classify import Classifier, load_classifier
from calibroute.classify.corpus import CHAT_SOURCES, CLASSES, grouped_split
from calibroute.classify.embedding import StaticEmbedder
from calibroute.classify.features import _sparse_memo
from calibroute.classify.linear import (
    ARTIFACT_DIR,
    STATIC_TOKENIZER,
    STATIC_VECTORS,
    VARIANTS,
    LinearArtifact,
    LinearTaskClassifier,
    softmax,
)
from calibroute.classify.training import (
    FeatureCache,
    TrainConfig,
    fit_temperature,
    load_training_rows,
    train_variant,
)
from calibroute.datasets import data_root

LATENCY_SOURCE = data_root() / "prompts" / "arena_hard_v2" / "question.jsonl"
THRESHOLDS = (0.0, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)
GENERAL = CLASSES.index("GENERAL")

# (prompt, classes it must NOT be routed to): the misroutes users complain about.
HARD_CASES: list[tuple[str, set[str]]] = [
    ("Prove that sqrt(2) is irrational.", {"SIMPLE", "OPEN_ENDED"}),
    ("Write a poem about autumn.", {"REASONING", "SIMPLE"}),
    (
        "Classify this review's sentiment as positive or negative: 'The battery died after two days.'",
        {"REASONING", "OPEN_ENDED"},
    ),
    ("What is the capital of Australia?", {"REASONING", "OPEN_ENDED"}),
    (
        "Summarize the following paragraph in one sentence: The city council met on Tuesday to discuss the new budget, which includes funding for parks and roads.",
        {"REASONING", "OPEN_ENDED"},
    ),
    ("Write a Python function that returns the n-th Fibonacci number in O(log n) time.", {"SIMPLE", "OPEN_ENDED"}),
    (
        "A train leaves at 3pm going 60 mph; another leaves at 4pm going 80 mph. When does the second catch up?",
        {"SIMPLE", "OPEN_ENDED"},
    ),
    ("Brainstorm ten names for a coffee shop run by cats.", {"REASONING", "SIMPLE"}),
    (
        "I want you to act as a travel guide. I will tell you my location and you will suggest places to visit.",
        {"REASONING", "SIMPLE"},
    ),
    ("Write a short story about a robot who learns to paint.", {"REASONING", "SIMPLE"}),
    ("Find all integers n such that n^2 + 1 is divisible by n + 1.", {"SIMPLE", "OPEN_ENDED"}),
    (
        "Why does my React component re-render twice? Here is the code: useEffect(() => { fetchData(); }, [])",
        {"SIMPLE", "OPEN_ENDED"},
    ),
    ("Translate 'good morning' into French.", {"REASONING", "OPEN_ENDED"}),
    (
        "Extract all email addresses from this text: contact alice@example.com or bob@test.org for details.",
        {"REASONING", "OPEN_ENDED"},
    ),
    ("What are the pros and cons of remote work for a small startup?", {"REASONING", "SIMPLE"}),
    ("How should I prepare for a job interview as a nurse?", {"REASONING", "SIMPLE"}),
    ("Rewrite this sentence to sound more formal: gonna be late, sorry.", {"REASONING", "OPEN_ENDED"}),
    ("Compute the derivative of x^3 * sin(x).", {"SIMPLE", "OPEN_ENDED"}),
    (
        (
            "Extract the invoice number and total from: Invoice #4471, issued 2024-03-02 to ACME Ltd. "
            "3 x widgets at $12.50, shipping $9.00. Total due: $1,284.50"
        ),
        {"REASONING", "OPEN_ENDED"},
    ),
    ("Fix the grammar: me and him goes to the store yesterday.", {"REASONING", "OPEN_ENDED"}),
    ("Give me a one-word synonym for happy.", {"REASONING", "OPEN_ENDED"}),
    ("List the planets of the solar system.", {"REASONING", "OPEN_ENDED"}),
]


def logits_for(art: LinearArtifact, cache: FeatureCache, idx: np.ndarray, variant: str) -> np.ndarray:
    parts = [w for w in (art.w_hash, art.w_emb) if w is not None]
    coef = np.vstack(parts)
    return np.asarray(cache.matrix(idx, variant) @ coef) + art.bias


def prf(y: np.ndarray, pred: np.ndarray) -> dict[str, tuple[float, float, float, int]]:
    out = {}
    for k, name in enumerate(CLASSES):
        tp = int(((pred == k) & (y == k)).sum())
        p = tp / max(int((pred == k).sum()), 1)
        r = tp / max(int((y == k).sum()), 1)
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[name] = (p, r, f, int((y == k).sum()))
    return out


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    stats = prf(y, pred)
    present = [v[2] for v in stats.values() if v[3] > 0]
    return float(np.mean(present))


def ece(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    conf, pred = prob.max(1), prob.argmax(1)
    total = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        m = (conf > lo) & (conf <= lo + 1 / bins)
        if m.any():
            total += m.mean() * abs(float((pred[m] == y[m]).mean()) - float(conf[m].mean()))
    return total


def threshold_rows(prob: np.ndarray, y: np.ndarray) -> list[str]:
    """Routing with fallback: confidence < t -> GENERAL. Misroute = routed to a wrong specialised class."""
    lines = [
        "| threshold | routed as classified | accuracy of classified | misroute rate (all) | end-to-end accuracy (GENERAL fallback counts as wrong unless GENERAL) |",
        "|---:|---:|---:|---:|---:|",
    ]
    conf, pred = prob.max(1), prob.argmax(1)
    for t in THRESHOLDS:
        kept = conf >= t
        routed = np.where(kept, pred, GENERAL)
        acc_kept = float((pred[kept] == y[kept]).mean()) if kept.any() else float("nan")
        misroute = float(((routed != y) & (routed != GENERAL)).mean())
        lines.append(f"| {t:.2f} | {kept.mean():.1%} | {acc_kept:.1%} | {misroute:.1%} | {(routed == y).mean():.1%} |")
    return lines


def prf_table(y: np.ndarray, pred: np.ndarray) -> list[str]:
    lines = ["| class | precision | recall | F1 | n |", "|---|---:|---:|---:|---:|"]
    for name, (p, r, f, n) in prf(y, pred).items():
        lines.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |" if n or p else f"| {name} | - | - | - | 0 |")
    return lines


def latency(
    clf: Classifier, text: str, n: int = 2000, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, float]:
    """p50/p99 in ms of ``classify``; ``time.thread_time`` excludes time the thread waits for the (shared) CPU.

    The featurizer memoises its last few texts (the router shares one pass with the difficulty estimator), so
    the memo is cleared before every timed call: each call pays for hashing, as a new prompt would.
    """
    for _ in range(500):
        _sparse_memo.cache_clear()
        clf.classify(text)
    ts = np.empty(n)
    for i in range(n):
        _sparse_memo.cache_clear()
        t0 = clock()
        clf.classify(text)
        ts[i] = clock() - t0
    return float(np.percentile(ts, 50) * 1e3), float(np.percentile(ts, 99) * 1e3)


def latency_report(text: str) -> list[str]:
    """The shipped classifiers, as the router loads them: wall clock and thread CPU time."""
    lines = [
        (
            f"Shipped classifiers, 300-word prompt ({len(text)} chars), 5,000 calls each after 500 warm-up calls, "
            f"one thread; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
        ),
        "",
        "| classifier | wall p50 ms | wall p99 ms | thread-CPU p50 ms | thread-CPU p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("default", "lexical", "embedding"):
        clf = load_classifier(name)
        w50, w99 = latency(clf, text, 5000)
        c50, c99 = latency(clf, text, 5000, time.thread_time)
        lines.append(f"| {name} | {w50:.3f} | {w99:.3f} | {c50:.3f} | {c99:.3f} |")
    return lines


def iid_macro_f1(cache: FeatureCache, variant: str, cfg: TrainConfig) -> float:
    """Reference only: a random 25% of rows held out (groups shared with training), so optimistic."""
    idx = list(range(len(cache.rows)))
    random.Random(cfg.seed).shuffle(idx)
    cut = len(idx) // 4
    te, tr = np.asarray(sorted(idx[:cut])), np.asarray(sorted(idx[cut:]))
    art = train_variant(cache, tr, variant, cfg, calibrate=False)
    return macro_f1(cache.y[te], logits_for(art, cache, te, variant).argmax(1))


def calibration_report(cache: FeatureCache, tr: np.ndarray, te: np.ndarray, cfg: TrainConfig) -> list[str]:
    """Temperature from held-out groups, from LOSO logits, or both (shipped); judged on the grouped test rows and,
    nested (each source's temperature fitted without its own logits), on LOSO logits of the training rows."""
    rows = [cache.rows[i] for i in tr]
    fit_rows, calib_rows = grouped_split(rows, cfg.calib_share, seed=cfg.seed + 1)
    pos = {id(ex): i for i, ex in zip(tr, rows)}
    fit_idx, calib_idx = (np.asarray([pos[id(ex)] for ex in part]) for part in (fit_rows, calib_rows))

    def logits(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        return logits_for(train_variant(cache, train_idx, "lexical", cfg, calibrate=False), cache, test_idx, "lexical")

    group_z, group_y = logits(fit_idx, calib_idx), cache.y[calib_idx]
    srcs = np.asarray([cache.rows[i].source for i in tr])
    loso = {s: (logits(tr[srcs != s], tr[srcs == s]), cache.y[tr[srcs == s]]) for s in CHAT_SOURCES}
    test_z = logits(tr, te)

    def temp(kind: str, skip: str = "") -> float:
        parts = [(z, y) for s, (z, y) in loso.items() if s != skip] if kind != "groups" else []
        parts += [(group_z, group_y)] if kind != "loso" else []
        return fit_temperature(np.vstack([z for z, _ in parts]), np.concatenate([y for _, y in parts]))

    def routing(prob: np.ndarray, y: np.ndarray, t: float = 0.55) -> str:
        kept = prob.max(1) >= t
        routed = np.where(kept, prob.argmax(1), GENERAL)
        return f"{kept.mean():.1%} / {((routed != y) & (routed != GENERAL)).mean():.1%}"

    lines = [
        "| temperature fitted on | T | grouped held-out ECE | LOSO ECE (nested, mean of 4) | grouped: routed / misrouted at 0.55 | LOSO: routed / misrouted at 0.55 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    loso_z = np.vstack([z for z, _ in loso.values()])
    loso_y = np.concatenate([y for _, y in loso.values()])
    for kind in ("groups", "loso", "groups+loso"):
        t = temp(kind)
        nested = [ece(softmax(z / temp(kind, skip=s)), y) for s, (z, y) in loso.items()]
        lines.append(
            f"| {kind} | {t:.2f} | {ece(softmax(test_z / t), cache.y[te]):.3f} | {np.mean(nested):.3f} | "
            f"{routing(softmax(test_z / t), cache.y[te])} | {routing(softmax(loso_z / t), loso_y)} |"
        )
    return lines


def no_torch_check() -> str:
    code = (
        "import sys, calibroute; from calibroute.classify import load_classifier; "
        "load_classifier('default').classify('prove that sqrt(2) is irrational'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return "torch imported: " + out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--static", type=Path, default=ARTIFACT_DIR, help="folder holding the packed static embedding")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--c", type=float, default=TrainConfig().c)
    ap.add_argument("--char-ngrams", default="3,4,5", help="comma list; empty for none")
    ap.add_argument("--edge-words", type=int, default=TrainConfig().edge_words)
    ap.add_argument("--skip-loso", action="store_true")
    ap.add_argument(
        "--no-loso-calibration", action="store_true", help="session 1's recipe: temperature from held-out groups only"
    )
    ap.add_argument("--latency-only", action="store_true", help="only time the shipped classifiers")
    ap.add_argument("--calibration-only", action="store_true", help="only compare temperature fits (lexical)")
    args = ap.parse_args()
    if args.latency_only:
        text = " ".join(json.loads(line)["prompt"] for line in LATENCY_SOURCE.open(encoding="utf-8"))
        print("\n".join(latency_report(" ".join(text.split()[:300]))))
        return
    ngrams = tuple(int(n) for n in args.char_ngrams.split(",") if n)
    cfg = TrainConfig(
        c=args.c, char_ngrams=ngrams, edge_words=args.edge_words, loso_calibration=not args.no_loso_calibration
    )
    variants = args.variants.split(",")
    rows = load_training_rows(args.data or data_root(), cfg)
    embedder = StaticEmbedder.load(args.static / STATIC_VECTORS, args.static / STATIC_TOKENIZER)
    cache = FeatureCache(rows, cfg.featurizer(), embedder)
    train, test = grouped_split(rows, 0.25, seed=cfg.seed)
    pos = {id(ex): i for i, ex in enumerate(rows)}
    tr = np.asarray([pos[id(ex)] for ex in train])
    te = np.asarray([pos[id(ex)] for ex in test])
    y = cache.y[te]
    if args.calibration_only:
        print("\n".join(calibration_report(cache, tr, te, cfg)))
        return
    out: list[str] = ["# Task classifier benchmark", ""]
    cmd = "nice python bench/classifier.py " + " ".join(sys.argv[1:])
    out += [f"Command: `{cmd.strip()}`", ""]
    pool_line = (
        f"Pool after near-duplicate removal and cap {cfg.cap}/(source,label): {len(rows)} rows; "
        f"grouped held-out split: {len(tr)} train / {len(te)} test rows, "
        f"{len({ex.group for ex in test})} of {len({ex.group for ex in rows})} groups held out whole."
    )
    out += [pool_line, ""]
    summary = [
        "| variant | macro-F1 | accuracy | macro-F1, random row split | ECE | temperature | p50 ms | p99 ms | artifact MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    details: list[str] = []
    long_text = " ".join((" ".join(ex.text for ex in rows if ex.source == "arena_hard_v2")).split()[:300])
    hard: dict[str, list[tuple[str, float]]] = {}
    for variant in variants:
        t0 = time.perf_counter()
        art = train_variant(cache, tr, variant, cfg)
        fit_s = time.perf_counter() - t0
        prob = softmax(logits_for(art, cache, te, variant) / art.temperature)
        pred = prob.argmax(1)
        clf = LinearTaskClassifier(art, embedder if art.uses_embedding else None)
        p50, p99 = latency(clf, long_text)
        with tempfile.TemporaryDirectory() as tmp:
            art.save(Path(tmp) / "a.npz")
            mb = (Path(tmp) / "a.npz").stat().st_size / 1e6
        if art.uses_embedding:
            mb += (args.static / STATIC_VECTORS).stat().st_size / 1e6 + (
                args.static / STATIC_TOKENIZER
            ).stat().st_size / 1e6
        iid = iid_macro_f1(cache, variant, cfg)
        summary.append(
            f"| {variant} | {macro_f1(y, pred):.3f} | {(pred == y).mean():.3f} | {iid:.3f} | {ece(prob, y):.3f} | "
            f"{art.temperature:.2f} | {p50:.3f} | {p99:.3f} | {mb:.2f} |"
        )
        details += (
            [f"### {variant} (fit {fit_s:.0f} s)", "", "Grouped held-out, per class:", ""] + prf_table(y, pred) + [""]
        )
        details += ["Per source (held-out rows): accuracy", ""]
        srcs = sorted({rows[i].source for i in te})
        details += ["| source | n | accuracy |", "|---|---:|---:|"]
        for s in srcs:
            m = np.asarray([rows[i].source == s for i in te])
            details.append(f"| {s} | {int(m.sum())} | {(pred[m] == y[m]).mean():.3f} |")
        details += (
            ["", "Confidence threshold (low confidence falls back to GENERAL):", ""] + threshold_rows(prob, y) + [""]
        )
        hard[variant] = [(clf.classify(p).task_class.value, clf.classify(p).confidence) for p, _ in HARD_CASES]
        if not args.skip_loso:
            details += ["Leave-one-chat-source-out (train without the source, test on all its rows):", ""]
            for src in CHAT_SOURCES:
                tr_s = np.asarray([i for i, ex in enumerate(rows) if ex.source != src])
                te_s = np.asarray([i for i, ex in enumerate(rows) if ex.source == src])
                art_s = train_variant(cache, tr_s, variant, cfg, calibrate=False)
                ys = cache.y[te_s]
                ps = logits_for(art_s, cache, te_s, variant).argmax(1)
                details += (
                    [f"**{src}** ({te_s.size} rows, accuracy {(ps == ys).mean():.3f})", ""] + prf_table(ys, ps) + [""]
                )
        print(f"{variant} done", file=sys.stderr)
    out += ["## Summary (grouped held-out split)", ""] + summary + [""]
    out += ["Latency: in-process `classify()` on a 300-word prompt, one thread, 2,000 calls after warm-up.", ""]
    out += [
        "## Hard cases",
        "",
        "| prompt | must not be | " + " | ".join(variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]
    for i, (p, bad) in enumerate(HARD_CASES):
        cells = []
        for v in variants:
            cls, conf = hard[v][i]
            mark = " ✗" if cls in bad else ""
            cells.append(f"{cls} {conf:.2f}{mark}")
        out.append(f"| {p[:70]} | {', '.join(sorted(bad))} | " + " | ".join(cells) + " |")
    out += ["", f"No-torch check on the default path: {no_torch_check()}", "", "## Details", ""] + details
    text = "\n".join(out) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
