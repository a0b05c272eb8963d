"""The task classifier on real chat traffic (issue 11): held-out chat sources, follow-ups, thresholds, latency.

    nice python bench/classifier_chat.py [--artifacts DIR] [--compare encoder-alone,lexical] [--out docs/bench-classifier-chat.md]

``encoder-alone`` is the shipped encoder without its lexical part (one temperature, as shipped in session 4).

Splits (``classify/chat_data.split_chat``, the same the training uses): the test sources are LIMA and
InstructionWild, whole sources never trained on (their licenses forbid it); the dev split is 15% of the
trainable chat rows (temperature and ``min_confidence`` are chosen there, never on a test split); the
follow-up test is 40% of the conversations of ``followups.jsonl``; the benchmark rows are the held-out
groups of the pool's benchmark sources. Rows whose two annotators disagree are left out of every test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from calibroute.classify import load_classifier
from calibroute.classify.chat_data import ChatRow
from calibroute.classify.corpus import CLASSES
from calibroute.classify.encoder import EncoderHead, EncoderTaskClassifier, load_encoder_classifier
from calibroute.classify.encoder_training import (
    SEVERE_MISROUTES,
    TARGET_ROUTED_ACCURACY,
    build_data,
    choose_min_confidence,
    coverage_curve,
    label_ids,
)
from calibroute.conversation import Turn
from calibroute.datasets import data_root

S, R, O, G = (CLASSES.index(c) for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"))
SEVERE = {(CLASSES.index(a), CLASSES.index(b)) for a, b in SEVERE_MISROUTES}  # (true, routed): the definition
DEMO_INTENDED = ["SIMPLE"] * 4 + ["REASONING"] * 4 + ["OPEN_ENDED"] * 4 + ["GENERAL"] * 3 + ["REASONING"]
POOL_PER_SOURCE = 400


def proba(clf: object, turns: list[Turn]) -> np.ndarray:
    if isinstance(clf, EncoderTaskClassifier):
        return clf.proba_turns(turns)
    out = []
    for t in turns:
        c = clf.classify(t.text)  # type: ignore[attr-defined]
        out.append([c.scores[k] for k in CLASSES])
    return np.asarray(out)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    f1s = []
    for k in range(len(CLASSES)):
        tp = float(((pred == k) & (y == k)).sum())
        denom = float((pred == k).sum() + (y == k).sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def routed_stats(p: np.ndarray, y: np.ndarray, t: dict[str, float]) -> dict[str, float]:
    """Routing at one threshold per predicted class; ``fallback_moved`` counts only fallbacks that change the route
    (a low-confidence GENERAL guess goes to GENERAL either way)."""
    conf, pred = p.max(1), p.argmax(1)
    kept = conf >= np.asarray([t[c] for c in CLASSES])[pred]
    routed = np.where(kept, pred, G)
    severe = sum((int(a), int(b)) in SEVERE for a, b in zip(y, routed))
    return {
        "argmax_acc": float((pred == y).mean()),
        "macro_f1": macro_f1(y, pred),
        "fallback": float(1 - kept.mean()),
        "fallback_moved": float((~kept & (pred != G)).mean()),
        "acc_kept": float((pred[kept] == y[kept]).mean()) if kept.any() else float("nan"),
        "routed_right": float((routed == y).mean()),
        "routed_macro_f1": macro_f1(y, routed),
        "severe": severe / max(1, y.size),
    }


def latency(clf: object, n: int = 200) -> dict[str, float]:
    words = Path(__file__).read_text().split()
    prompt = " ".join(words[:300])
    for _ in range(10):
        clf.classify(prompt)  # type: ignore[attr-defined]
    wall, cpu = [], []
    for i in range(n):
        text = f"{prompt} (request {i})"  # a new text each time: no classifier memo hits
        w, c = time.perf_counter(), time.thread_time()
        clf.classify(text)  # type: ignore[attr-defined]
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - w) * 1e3)
    return {"wall_p50": float(np.percentile(wall, 50)), "wall_p99": float(np.percentile(wall, 99)),
            "cpu_p50": float(np.percentile(cpu, 50)), "cpu_p99": float(np.percentile(cpu, 99))}  # fmt: skip


def per_source(rows: list[ChatRow], p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    src = np.array([r.source for r in rows])
    return {s: macro_f1(y[src == s], p[src == s].argmax(1)) for s in sorted(set(src))}


def evaluate(name: str, clf: object, data, min_conf: float | None) -> dict:  # type: ignore[no-untyped-def]
    """Every metric for ``clf``; thresholds chosen on dev (one per predicted class) unless ``min_conf`` is given."""
    split = data.split
    sets = {"dev": split.dev, "test_sources": split.test_sources, "test_followups": split.test_followups}
    res: dict = {"name": name, "sets": {}}
    probs = {k: proba(clf, [r.turn for r in rows]) for k, rows in sets.items()}
    ys = {k: label_ids([r.label for r in rows]) for k, rows in sets.items()}
    chosen = choose_min_confidence(probs["dev"], ys["dev"])
    res["min_confidence_dev"] = chosen
    res["curve_dev"] = coverage_curve(probs["dev"], ys["dev"], [0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9])
    t = dict.fromkeys(CLASSES, min_conf) if min_conf is not None else chosen
    res["min_confidence"] = t
    for k in sets:
        res["sets"][k] = routed_stats(probs[k], ys[k], t) | {"n": int(ys[k].size)}
    res["per_source_test"] = per_source(split.test_sources, probs["test_sources"], ys["test_sources"])
    res["per_source_dev"] = per_source(split.dev, probs["dev"], ys["dev"])
    rng = np.random.default_rng(0)
    pool = [data.pool_test[i] for i in rng.permutation(len(data.pool_test))]
    counts: Counter[str] = Counter()
    pool = [e for e in pool if (counts.update([e.source]) or counts[e.source]) <= POOL_PER_SOURCE]
    pp = proba(clf, [Turn(e.text) for e in pool])
    py, psrc = label_ids([e.label for e in pool]), np.array([e.source for e in pool])
    res["pool"] = {s: float((pp[psrc == s].argmax(1) == py[psrc == s]).mean()) for s in sorted(set(psrc))}
    demo = [json.loads(x)["prompt"] for x in Path(__file__).parent.parent.joinpath("src/calibroute/data/sample_prompts.jsonl").read_text().splitlines()]
    dp = proba(clf, [Turn(d) for d in demo])
    res["demo"] = int(sum(dp[i].argmax() == CLASSES.index(c) and dp[i].max() >= t[c] for i, c in enumerate(DEMO_INTENDED)))
    res["latency"] = latency(clf)
    return res


def report(results: list[dict]) -> str:
    lines = ["| metric | " + " | ".join(r["name"] for r in results) + " |", "|---|" + "---:|" * len(results)]

    def row(label: str, get) -> None:  # type: ignore[no-untyped-def]
        lines.append(f"| {label} | " + " | ".join(get(r) for r in results) + " |")

    row(f"min_confidence S/R/O/G (chosen on dev, target {TARGET_ROUTED_ACCURACY} routed accuracy)",
        lambda r: " / ".join(f"{r['min_confidence'][c]:.2f}" for c in CLASSES))
    for k in ("test_sources", "dev", "test_followups"):
        row(f"{k} n", lambda r, k=k: str(r["sets"][k]["n"]))
        for m in ("macro_f1", "argmax_acc", "fallback", "fallback_moved", "acc_kept", "routed_right", "routed_macro_f1", "severe"):
            row(f"{k} {m}", lambda r, k=k, m=m: f"{r['sets'][k][m]:.3f}")
    for s in sorted(results[0]["per_source_test"]):
        row(f"test source {s} macro-F1", lambda r, s=s: f"{r['per_source_test'][s]:.3f}")
    for s in sorted(results[0]["per_source_dev"]):
        row(f"dev source {s} macro-F1", lambda r, s=s: f"{r['per_source_dev'][s]:.3f}")
    for s in sorted(results[0]["pool"]):
        row(f"benchmark {s} accuracy", lambda r, s=s: f"{r['pool'][s]:.3f}")
    row("demo prompts confidently in their class (of 16)", lambda r: str(r["demo"]))
    for m in ("cpu_p50", "cpu_p99", "wall_p50", "wall_p99"):
        row(f"latency 300 words {m} ms", lambda r, m=m: f"{r['latency'][m]:.2f}")
    curve = ["", "Coverage-accuracy curve on dev (threshold: share routed, accuracy of routed):", ""]
    for r in results:
        curve.append(f"- {r['name']}: " + ", ".join(f"{t:.2f}: {k:.2f}/{a:.3f}" for t, k, a in r["curve_dev"]))
    return "\n".join(lines + curve)


def alone(enc: EncoderTaskClassifier) -> EncoderTaskClassifier:
    """The encoder without its lexical part: its own temperature, the weight set to 0."""
    h = enc.head
    return enc.with_head(EncoderHead(h.classes, h.w, h.b, h.temperature, h.meta))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, help="folder with the encoder artifacts (default: shipped)")
    ap.add_argument("--compare", default="encoder-alone,lexical", help="registered classifiers to compare, comma-separated ('' for none)")
    ap.add_argument("--min-confidence", type=float, help="evaluate at this threshold instead of the dev-chosen one")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    args = ap.parse_args()
    data = build_data(data_root())
    enc = load_encoder_classifier(args.artifacts) if args.artifacts else load_classifier("encoder")
    results = [evaluate("encoder", enc, data, args.min_confidence)]
    for name in filter(None, args.compare.split(",")):
        other = alone(enc) if name == "encoder-alone" else load_classifier(name)
        results.append(evaluate(name, other, data, args.min_confidence))
    md = report(results)
    print(md)
    if args.out:
        args.out.write_text(md + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
