"""`calibrate routing` on the four published sources (issue 13): does the guarantee hold, and what does it save?

For each source, the prompts the shipped difficulty estimator never trained on are split at random
into calibration and test halves, 100 times. On each split the escalation threshold is chosen by
Learn-then-Test (evaluate/guarantee.py) for "routed quality >= (1 - eps) x always-strongest with
probability >= 1 - delta" and checked on the test half; the uncalibrated default (strong_share 0.3)
is checked on the same half with the same pair. Run:

    CALIBROUTE_DATA=../shared/data nice python bench/calibrate_routing.py --out docs/bench-calibrate-routing.md
"""

from __future__ import annotations

import argparse
import time

from calibroute.classify import load_difficulty
from calibroute.evaluate.routing_calibration import (
    DEFAULT_STRONG_SHARE,
    batch_scorer,
    prepare,
    repeated_splits,
    summarise,
)
from calibroute.outcomes import load_dataset

SOURCES = ("routellm-gsm8k", "routellm-mmlu", "routerbench", "dcrouter")
COLUMNS = ("source", "eps", "prompts", "pair (weak -> strong)", "guarantee held", "default held", "quality vs strongest",
           "saving vs strongest", "saving vs default", "default saves", "default quality", "escalated", "threshold")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--epsilons", default="0.02,0.05,0.1")
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--splits", type=int, default=100)
    ap.add_argument("--out", help="write the markdown table here")
    args = ap.parse_args()
    est = load_difficulty()
    default_threshold = est.threshold_for_share(DEFAULT_STRONG_SHARE)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name in args.sources.split(","):
        t0 = time.perf_counter()
        data = prepare(load_dataset(name), batch_scorer(est), default_threshold)
        for eps in (float(e) for e in args.epsilons.split(",")):
            results = repeated_splits(data, eps, args.delta, args.splits)
            s = summarise(results)
            pairs = sorted({f"{r.weak or '(none)'} -> {r.strong}" for r in results})
            pair = pairs[0] if len(pairs) == 1 else f"{len(pairs)} pairs, e.g. {pairs[0]}"
            row = (name, f"{eps:g}", str(len(data.p_weak)), pair, _pct(s["held_rate"]), _pct(s["default_held_rate"]),
                   _pct(s["quality_ratio"]), _pct(s["saving_vs_strong"]), _pct(s["saving_vs_default"]),
                   _pct(s["default_saving_vs_strong"]), _pct(s["default_quality_ratio"]), _pct(s["escalated_test"]),
                   f"{s['threshold_median']:.3f}")
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
        print(f"# {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    header = (f"delta = {args.delta:g}, {args.splits} random 50/50 calibration/test splits per source; default = "
              f"strong_share {DEFAULT_STRONG_SHARE} (threshold {default_threshold:.3f}) with the same pair; means over splits.\n\n")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
