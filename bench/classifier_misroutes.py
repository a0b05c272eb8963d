"""The misroute suite: short, realistic user requests (tests/data/misroute_suite.jsonl) through a classifier.

    python bench/classifier_misroutes.py [--artifacts DIR] [--variant lexical] [--config PORTFOLIO.yaml] [--list]

The suite is a test fixture written by hand, never training data. Reports accuracy (argmax), and what the router
would do at ``routing.min_confidence`` (the portfolio's -- one number or one per predicted class -- and the global
0.70 and 0.55 for comparison): routed as classified, GENERAL fallback, or a
misroute. A misroute is *severe* when REASONING is on one side and another specialised class on the other (a proof
sent to the cheap tier, an extraction or a poem sent to the reasoning tier); SIMPLE <-> OPEN_ENDED and a GENERAL
prompt routed to a specialised class are *mild*; falling back to GENERAL is never a misroute.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from calibroute.classify import Classifier, load_classifier
from calibroute.classify.corpus import CLASSES
from calibroute.classify.linear import load_variant
from calibroute.config import RoutingSettings, load_portfolio

SUITE = Path(__file__).resolve().parent.parent / "tests" / "data" / "misroute_suite.jsonl"


@dataclass(frozen=True)
class Outcome:
    prompt: str
    expected: str
    predicted: str
    confidence: float

    def routed(self, routing: RoutingSettings | float) -> str:
        bar = routing if isinstance(routing, float) else routing.threshold_for(self.predicted)
        return self.predicted if self.confidence >= bar else "GENERAL"

    def severity(self, routing: RoutingSettings | float) -> str:
        """``ok``, ``fallback`` (GENERAL instead of a specialised class), ``mild`` or ``severe``."""
        routed = self.routed(routing)
        if routed == self.expected:
            return "ok"
        if routed == "GENERAL":
            return "fallback"
        if self.expected != "GENERAL" and "REASONING" in (routed, self.expected):
            return "severe"
        return "mild"


def load_suite(path: Path = SUITE) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return [(r["prompt"], r["expected"]) for r in rows]


def run(clf: Classifier, suite: list[tuple[str, str]]) -> list[Outcome]:
    out = []
    for prompt, expected in suite:
        c = clf.classify(prompt)
        out.append(Outcome(prompt, expected, c.task_class.value, c.confidence))
    return out


def label(routing: RoutingSettings) -> str:
    """'0.70', or the per-class thresholds 'S 0.75 / R 0.55 / O 0.65 / G 0.00'."""
    if isinstance(routing.min_confidence, float):
        return f"{routing.min_confidence:.2f}"
    return " / ".join(f"{c[0]} {routing.threshold_for(c):.2f}" for c in CLASSES)


def report(outcomes: list[Outcome], thresholds: tuple[RoutingSettings, ...], show: bool) -> list[str]:
    n = len(outcomes)
    acc = sum(o.predicted == o.expected for o in outcomes) / n
    lines = [f"Suite: {n} prompts; argmax accuracy **{acc:.3f}**.", ""]
    lines += ["| expected \\ predicted | " + " | ".join(CLASSES) + " | accuracy |", "|---|" + "---:|" * (len(CLASSES) + 1)]
    for cls in CLASSES:
        row = [o for o in outcomes if o.expected == cls]
        counts = Counter(o.predicted for o in row)
        cells = " | ".join(str(counts.get(k, 0)) for k in CLASSES)
        lines.append(f"| {cls} | {cells} | {counts.get(cls, 0) / max(len(row), 1):.2f} |")
    lines += ["", "| min_confidence | routed as expected | GENERAL fallback | mild misroutes | severe misroutes |"]
    lines.append("|---:|---:|---:|---:|---:|")
    for t in thresholds:
        sev = Counter(o.severity(t) for o in outcomes)
        lines.append(f"| {label(t)} | {sev['ok']} | {sev['fallback']} | {sev['mild']} | {sev['severe']} |")
    if show:
        t = thresholds[0]
        lines += ["", f"Misroutes at min_confidence {label(t)}:", "", "| prompt | expected | classifier | severity |"]
        lines.append("|---|---|---|---|")
        for o in outcomes:
            sev = o.severity(t)
            if sev in ("mild", "severe"):
                lines.append(f"| {o.prompt[:70]} | {o.expected} | {o.predicted} {o.confidence:.2f} | {sev} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", type=Path, default=None, help="folder with classifier-*.npz (default: shipped)")
    ap.add_argument("--variant", default="lexical")
    ap.add_argument("--suite", type=Path, default=SUITE)
    ap.add_argument("--config", default=None, help="portfolio whose routing.min_confidence is tried first (default: built-in)")
    ap.add_argument("--list", action="store_true", help="list every misroute (at the portfolio's thresholds)")
    args = ap.parse_args()
    clf = load_variant(args.variant, args.artifacts) if args.artifacts else load_classifier(args.variant)
    outcomes = run(clf, load_suite(args.suite))
    settings = [load_portfolio(args.config).routing] + [RoutingSettings(min_confidence=t) for t in (0.70, 0.55)]
    unique = {label(s): s for s in settings}  # the portfolio's 0.70 once
    print("\n".join(report(outcomes, tuple(unique.values()), args.list)))


if __name__ == "__main__":
    main()
