"""A hand-written follow-up suite (default tests/data/followup_suite.jsonl) through the shipped classifier.

    python bench/classifier_followup_suite.py [--suite PATH] [--classifier encoder] [--config PORTFOLIO.yaml] [--list]
        [--out FILE.md]

Our only labelled follow-ups are ShareGPT's (messy, often "continue"); the blind test has clean second turns
("now translate it", "now do it for n = 3"). This suite is two-turn conversations of that style, written by hand
and labelled by the class guide; it is a test fixture, never training data. Each conversation goes through
``turn_from_messages`` as the router reads it (last user turn + previous turn and answer as context), and once
more with the last user turn alone, to show what the context adds. "Routed right" applies the portfolio's
``routing.min_confidence`` (below the predicted class's threshold the router sends the request to GENERAL);
severity as in bench/classifier_misroutes.py.

Two suites: followup_suite.jsonl is the development suite (its errors are read and tuned on);
``--suite tests/data/followup_suite_heldout.jsonl`` is a held-out test written independently of it. Report only its
aggregate numbers; do not read its errors (``--list``) while tuning, or it stops being held out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classifier_misroutes import Outcome, label

from calibroute.classify import Classifier, load_classifier
from calibroute.classify.corpus import CLASSES
from calibroute.config import RoutingSettings, load_portfolio
from calibroute.conversation import turn_from_messages

SUITE = Path(__file__).resolve().parent.parent / "tests" / "data" / "followup_suite.jsonl"
MODES = ("in context", "last turn alone")


def load_suite(path: Path = SUITE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def classify_conversation(clf: Classifier, messages: Sequence[Mapping[str, Any]], with_context: bool) -> Outcome:
    """The router's reading of a conversation (``expected`` is filled in by the caller)."""
    turn = turn_from_messages(messages)
    result = clf.classify(turn.text, turn.context) if with_context and turn.context else clf.classify(turn.text)
    return Outcome(turn.text, "", result.task_class.value, result.confidence)


def run(clf: Classifier, rows: list[dict[str, Any]], with_context: bool) -> list[Outcome]:
    out = []
    for row in rows:
        o = classify_conversation(clf, row["messages"], with_context)
        out.append(Outcome(o.prompt, row["task_class"], o.predicted, o.confidence))
    return out


def summary(outcomes: list[Outcome], routing: RoutingSettings) -> dict[str, float]:
    n = len(outcomes)
    sev = [o.severity(routing) for o in outcomes]
    stats = {
        "accuracy": sum(o.predicted == o.expected for o in outcomes) / n,
        "routed_right": sev.count("ok") / n,
        "fallback": sum(o.routed(routing) == "GENERAL" and o.predicted != "GENERAL" for o in outcomes) / n,
        "severe": sev.count("severe") / n,
    }
    for cls in CLASSES:
        picked = [i for i, o in enumerate(outcomes) if o.expected == cls]
        stats[cls] = sum(outcomes[i].predicted == cls for i in picked) / max(len(picked), 1)
        stats[f"routed_{cls}"] = sum(sev[i] == "ok" for i in picked) / max(len(picked), 1)
    return stats


def confusion(outcomes: list[Outcome], title: str) -> list[str]:
    lines = [f"{title} (rows = label, columns = argmax):", ""]
    lines += ["| label \\ predicted | " + " | ".join(CLASSES) + " | n |", "|---|" + "---:|" * (len(CLASSES) + 1)]
    for cls in CLASSES:
        counts = Counter(o.predicted for o in outcomes if o.expected == cls)
        cells = " | ".join(str(counts.get(k, 0)) for k in CLASSES)
        lines.append(f"| {cls} | {cells} | {sum(counts.values())} |")
    return lines


def first_turn_classes(clf: Classifier, rows: list[dict[str, Any]]) -> list[str]:
    """The class the classifier gives the conversation's first user turn alone (a proxy for "what came before")."""
    return [clf.classify(next(m["content"] for m in row["messages"] if m["role"] == "user")).task_class.value for row in rows]


def by_first_turn(results: dict[str, list[Outcome]], first: list[str]) -> list[str]:
    """Accuracy where the follow-up keeps the first turn's class vs changes it: does the context's class leak?"""
    lines = ["", "| follow-up vs first turn (first turn as classified alone) | n | " + " | ".join(MODES) + " |",
             "|---|---:|" + "---:|" * len(MODES)]
    for title, same in (("same class as the first turn", True), ("another class than the first turn", False)):
        picked = [i for i, o in enumerate(results[MODES[0]]) if (first[i] == o.expected) == same]
        cells = " | ".join(
            f"{sum(results[m][i].predicted == results[m][i].expected for i in picked) / max(len(picked), 1):.3f}"
            for m in MODES)
        lines.append(f"| {title} | {len(picked)} | {cells} |")
    return lines


def report(results: dict[str, list[Outcome]], routing: RoutingSettings, first: list[str], show: bool) -> list[str]:
    stats = {mode: summary(outcomes, routing) for mode, outcomes in results.items()}
    n = len(next(iter(results.values())))
    counts = Counter(o.expected for o in next(iter(results.values())))
    lines = [f"Suite: {n} two-turn conversations ("
             + ", ".join(f"{c} {counts[c]}" for c in CLASSES) + f"); min_confidence {label(routing)}.", ""]
    lines += ["| metric | " + " | ".join(MODES) + " |", "|---|" + "---:|" * len(MODES)]
    rows = [("argmax accuracy", "accuracy")] + [(f"accuracy on {c}", c) for c in CLASSES]
    rows += [("routed to the right class (fallback counts)", "routed_right")]
    rows += [(f"routed right on {c}", f"routed_{c}") for c in CLASSES] + [
        ("fallback to GENERAL that changes the route", "fallback"),
        ("severe misroutes (routed)", "severe"),
    ]
    for title, key in rows:
        cells = " | ".join(f"{stats[m][key]:.3f}" for m in MODES)
        lines.append(f"| {title} | {cells} |")
    lines += by_first_turn(results, first)
    for mode, outcomes in results.items():
        lines += [""] + confusion(outcomes, f"Confusion, {mode}")
    if show:
        lines += ["", "Errors in context (argmax):", "", "| follow-up | label | classifier | alone |", "|---|---|---|---|"]
        for o, bare in zip(results[MODES[0]], results[MODES[1]], strict=True):
            if o.predicted != o.expected:
                text = o.prompt.replace("|", "/").replace("\n", " ")[:80]
                lines.append(f"| {text} | {o.expected} | {o.predicted} {o.confidence:.2f} | "
                             f"{bare.predicted} {bare.confidence:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--classifier", default="encoder", help="registered classifier name (default: the shipped encoder)")
    ap.add_argument("--suite", type=Path, default=SUITE,
                    help="JSONL suite to measure (default: the development suite; the held-out one is "
                         "tests/data/followup_suite_heldout.jsonl)")
    ap.add_argument("--config", default=None, help="portfolio whose routing.min_confidence applies (default: built-in)")
    ap.add_argument("--list", action="store_true", help="list every argmax error in context")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = ap.parse_args()
    clf = load_classifier(args.classifier)
    rows = load_suite(args.suite)
    results = {mode: run(clf, rows, with_context=(mode == MODES[0])) for mode in MODES}
    text = "\n".join(report(results, load_portfolio(args.config).routing, first_turn_classes(clf, rows), args.list))
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
