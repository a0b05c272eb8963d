"""A two-stage classifier, measured before it is built: the shipped encoder decides alone when it is sure, and a
larger encoder (its logits added to the first stage's and the lexical part's) joins when it is not.

    nice python bench/classifier_cascade.py --stage2 DIR [--escalate 0.6,0.7,0.8,0.9]

``DIR`` is an encoder artifact folder from ``bench/classifier_variant.py`` (e.g. all 6 layers, 128 tokens). The
combination's weights and temperature are fitted on the dev split (minimum NLL), the thresholds chosen on dev as
shipped; the paired bootstrap (1,000 resamples) gives the 95 % interval of each macro-F1 difference to the shipped
model. Every row is scored alone, as the router scores it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classifier_chat import DEMO_INTENDED, POOL_PER_SOURCE, macro_f1, routed_stats

from calibroute.classify.encoder import EncoderTaskClassifier, encoder, load_encoder_classifier
from calibroute.classify.encoder_training import build_data, choose_min_confidence, fit_temperature, label_ids
from calibroute.classify.linear import softmax
from calibroute.conversation import Turn
from calibroute.datasets import data_root

WEIGHTS = np.arange(0.0, 1.51, 0.125)
SETS = ("dev", "test_sources", "test_followups", "pool", "demo")


def eval_sets(data) -> dict[str, tuple[list[Turn], np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(turns, labels, sources) per set, the pool sampled as bench/classifier_chat.py samples it."""
    rng = np.random.default_rng(0)
    pool = [data.pool_test[i] for i in rng.permutation(len(data.pool_test))]
    counts: Counter[str] = Counter()
    pool = [e for e in pool if (counts.update([e.source]) or counts[e.source]) <= POOL_PER_SOURCE]
    demo_file = Path(__file__).resolve().parent.parent / "src/calibroute/data/sample_prompts.jsonl"
    demo = [json.loads(line)["prompt"] for line in demo_file.read_text().splitlines() if line.strip()]
    out = {k: ([r.turn for r in rows], [r.label for r in rows], [r.source for r in rows]) for k, rows in
           (("dev", data.split.dev), ("test_sources", data.split.test_sources), ("test_followups", data.split.test_followups))}  # fmt: skip
    out["pool"] = ([Turn(e.text) for e in pool], [e.label for e in pool], [e.source for e in pool])
    out["demo"] = ([Turn(d) for d in demo], DEMO_INTENDED, ["demo"] * len(demo))
    return {k: (turns, label_ids(labels), np.asarray(src)) for k, (turns, labels, src) in out.items()}


def scored(clf: EncoderTaskClassifier, turns: list[Turn]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated probabilities, encoder logits before temperature, lexical logits, mask of fresh rows): one
    encoder pass serves both the classifier as shipped and the combination."""
    vectors = clf.encoder.encode(turns)
    lexical = clf.lexical_logits(turns)
    proba = clf.head.proba(vectors) if lexical is None else clf.head.proba(vectors, *lexical)
    lex, fresh = lexical if lexical is not None else (np.zeros((len(turns), len(clf.classes))), np.zeros(len(turns), dtype=bool))
    return proba, vectors @ clf.head.w + clf.head.b, lex, fresh


def nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(p[np.arange(y.size), y] + 1e-12)))


def fit_combination(z1: np.ndarray, z2: np.ndarray, lex: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(first-stage weight, lexical weight, temperature) for ``w1 z1 + z2 + a lex`` with the lowest dev NLL."""
    best = (np.inf, 0.0, 0.0, 1.0)
    for w1, a in itertools.product(WEIGHTS, WEIGHTS):
        z = w1 * z1 + z2 + a * lex
        t = fit_temperature(z, y)
        best = min(best, (nll(softmax(z / t), y), float(w1), float(a), t))
    return best[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage2", type=Path, required=True, help="encoder artifact folder of the second stage")
    ap.add_argument("--escalate", default="0.6,0.7,0.8,0.9", help="first-stage confidences below which stage 2 runs")
    args = ap.parse_args()
    sets = eval_sets(build_data(data_root()))
    first, second = encoder(), load_encoder_classifier(args.stage2)
    s1 = {k: scored(first, t) for k, (t, _, _) in sets.items()}
    s2 = {k: scored(second, t) for k, (t, _, _) in sets.items()}
    p1, p2 = {k: v[0] for k, v in s1.items()}, {k: v[0] for k, v in s2.items()}
    r1, z2 = {k: v[1:] for k, v in s1.items()}, {k: v[1] for k, v in s2.items()}
    y = {k: v[1] for k, v in sets.items()}
    w1, a, t_fresh = fit_combination(r1["dev"][0], z2["dev"], r1["dev"][1], y["dev"])
    t_followup = fit_temperature(w1 * r1["dev"][0] + z2["dev"], y["dev"])  # no dev follow-ups: the turn-only form

    def combined(k: str) -> np.ndarray:
        z1, lex, fresh = r1[k]
        both = w1 * z1 + z2[k]
        return softmax(np.where(fresh[:, None], (both + a * lex) / t_fresh, both / t_followup))

    pc = {k: combined(k) for k in SETS}
    first_confidence = {k: p1[k].max(1) for k in SETS}  # stage 2 runs where this is below e
    variants: dict[str, tuple[Callable[[str], np.ndarray], float]] = {
        "shipped (stage 1)": (p1.__getitem__, 0.0), "stage 2 alone": (p2.__getitem__, 1.0), "both, always": (pc.__getitem__, 1.0),
    }  # fmt: skip
    for e in (float(x) for x in args.escalate.split(",")):
        variants[f"cascade, stage 2 below {e:.2f}"] = (
            lambda k, e=e: np.where((first_confidence[k] < e)[:, None], pc[k], p1[k]), float((first_confidence["test_sources"] < e).mean()))
    print(f"combination fitted on dev: w1 {w1}, lexical {a}, temperature {t_fresh:.3f} (follow-ups {t_followup:.3f})\n")
    print("| variant | escalated (test) | test macro-F1 [95 % CI of the gain] | dev macro-F1 | follow-ups acc | fallback moved "
          "| acc kept | severe | BBH | demo |\n|---|" + "---:|" * 9)  # fmt: skip
    rng = np.random.default_rng(0)
    for name, (proba, share) in variants.items():
        p = {k: proba(k) for k in SETS}
        chosen = choose_min_confidence(p["dev"], y["dev"])
        test = routed_stats(p["test_sources"], y["test_sources"], chosen)
        gains = []
        for _ in range(1000):
            i = rng.integers(0, y["test_sources"].size, y["test_sources"].size)
            gains.append(macro_f1(y["test_sources"][i], p["test_sources"][i].argmax(1)) - macro_f1(y["test_sources"][i], p1["test_sources"][i].argmax(1)))
        lo, hi = np.percentile(gains, [2.5, 97.5])
        bbh = sets["pool"][2] == "bbh"
        demo = sum(p["demo"][i].argmax() == y["demo"][i] and p["demo"][i].max() >= chosen[c] for i, c in enumerate(DEMO_INTENDED))
        print(f"| {name} | {share:.2f} | {test['macro_f1']:.3f} [{lo:+.3f}, {hi:+.3f}] | {macro_f1(y['dev'], p['dev'].argmax(1)):.3f} "
              f"| {(p['test_followups'].argmax(1) == y['test_followups']).mean():.3f} | {test['fallback_moved']:.3f} | {test['acc_kept']:.3f} "
              f"| {test['severe']:.3f} | {(p['pool'][bbh].argmax(1) == y['pool'][bbh]).mean():.3f} | {demo} |")  # fmt: skip


if __name__ == "__main__":
    main()
