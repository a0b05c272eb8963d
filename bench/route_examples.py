"""Operator-labelled examples (``routing.examples``) on the misroute suite: accuracy and added latency.

    python bench/route_examples.py [--folds 2] [--thresholds 0.3,0.4,0.5,0.6,0.8] [--per-class 5,all]
                                   [--sizes 100,1000] [--rounds 5]

Accuracy: the suite (tests/data/misroute_suite.jsonl) is split k-fold by prompt, stratified by class; each fold
in turn plays the operator's labelled examples (optionally only the first N per class) and the others are routed
by the full ``Router`` (shipped classifier and difficulty estimator, ``min_confidence`` 0.70). Every prompt is
measured exactly once, never against its own fold. This measures how the mechanism transfers to *similar*
requests from the same operator, not the shipped classifier's accuracy.

Latency: ``Router.decide`` over the suite with 0 / 100 / 1,000 examples (short prompts from the labelled pool under
$CALIBROUTE_DATA, or suite variants if it is missing), rounds interleaved so the ratios are side by side; and the
matcher alone (``ExampleMatcher.match`` with the prompt's features already memoised, as in the router).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import yaml
from classifier_misroutes import Outcome, load_suite

from calibroute import Router
from calibroute.classify.examples import ExampleMatcher, featurizer_of
from calibroute.classify.features import split_payload
from calibroute.config import load_portfolio, parse_portfolio

MIN_CONFIDENCE = 0.70


def stratified_folds(suite: Sequence[tuple[str, str]], k: int) -> list[list[int]]:
    """Indices per fold: within each class, prompts are dealt to the folds in file order."""
    folds: list[list[int]] = [[] for _ in range(k)]
    dealt: Counter[str] = Counter()
    for i, (_, expected) in enumerate(suite):
        folds[dealt[expected] % k].append(i)
        dealt[expected] += 1
    return folds


def router_with(examples: Sequence[tuple[str, str]], min_similarity: float) -> Router:
    data = load_portfolio().model_dump(mode="json", exclude_none=True)
    grouped: dict[str, list[str]] = {}
    for cls, text in examples:
        grouped.setdefault(cls, []).append(text)
    data["routing"].update(min_confidence=MIN_CONFIDENCE, examples=grouped, example_min_similarity=min_similarity)
    return Router(parse_portfolio(yaml.safe_dump(data), "<bench>"))


def first_per_class(rows: Sequence[tuple[str, str]], n: int | None) -> list[tuple[str, str]]:
    """The operator's examples: ``(class, prompt)``, the first ``n`` of each class (all if None)."""
    taken: Counter[str] = Counter()
    out = []
    for prompt, cls in rows:
        if n is None or taken[cls] < n:
            out.append((cls, prompt))
            taken[cls] += 1
    return out


def evaluate(suite: Sequence[tuple[str, str]], k: int, per_class: int | None, threshold: float | None) -> Counter[str]:
    """Severity counts (ok, fallback, mild, severe) plus how many decisions an example made and got right."""
    counts: Counter[str] = Counter()
    folds = stratified_folds(suite, k)
    for f, measured in enumerate(folds):
        examples = [] if threshold is None or per_class == 0 else first_per_class([suite[i] for i in folds[(f + 1) % k]], per_class)
        router = router_with(examples, threshold or 1.0) if examples else Router(load_portfolio())
        for i in measured:
            prompt, expected = suite[i]
            d = router.decide(prompt=prompt)
            # The decision's class is already the routed one (GENERAL on a fallback): confidence 1 keeps it as is.
            counts[Outcome(prompt, expected, d.task_class.value, 1.0).severity(MIN_CONFIDENCE)] += 1
            if d.rule == "example_match" or "example_match" in d.rules:
                counts["matched"] += 1
                counts["matched_right"] += d.task_class.value == expected
    return counts


def similarity_profile(suite: Sequence[tuple[str, str]], k: int, thresholds: Sequence[float]) -> list[str]:
    """Where the threshold sits: best similarity of distinct requests (other fold) vs same-instruction requests.

    Same instruction: every suite prompt that hands over material ("Fix the grammar: ...") is an example; the
    query is its instruction with the *next* such prompt's material (that prompt itself excluded from the
    examples), i.e. templated traffic with new payloads.
    """
    folds = stratified_folds(suite, k)
    distinct: list[tuple[float, bool]] = []
    for f, measured in enumerate(folds):
        matcher = ExampleMatcher(first_per_class([suite[i] for i in folds[(f + 1) % k]], None), 1.0)
        for i in measured:
            sims = matcher.similarities(suite[i][0])
            best = int(np.argmax(sims))
            distinct.append((float(sims[best]), matcher.classes[best].value == suite[i][1]))
    handed = [(prompt, cls, *split_payload(prompt)) for prompt, cls in suite if split_payload(prompt)[1]]
    matcher = ExampleMatcher([(cls, prompt) for prompt, cls, _, _ in handed], 1.0)
    templated: list[tuple[float, bool]] = []
    for j, (_, cls, head, _) in enumerate(handed):
        donor = (j + 1) % len(handed)
        sims = matcher.similarities(head + handed[donor][3])
        sims[donor] = 0.0  # the material's own prompt is not an example of this request
        best = int(np.argmax(sims))
        templated.append((float(sims[best]), matcher.classes[best].value == cls))
    lines = [
        (
            f"Best example similarity: distinct requests ({len(distinct)}, other fold as examples) vs same instruction "
            f"with new material ({len(templated)} prompts that hand over material)."
        ),
        "",
        "| set | p50 | p90 | max | " + " | ".join(f">= {t:.2f} (right)" for t in thresholds) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(thresholds),
    ]
    for name, rows in (("distinct requests", distinct), ("same instruction, new material", templated)):
        sims = np.array([s for s, _ in rows])
        cells = " | ".join(f"{sum(s >= t for s, _ in rows)} ({sum(s >= t and ok for s, ok in rows)})" for t in thresholds)
        lines.append(f"| {name} | {np.percentile(sims, 50):.2f} | {np.percentile(sims, 90):.2f} | {sims.max():.2f} | {cells} |")
    return lines


def latency_examples(n: int, suite: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``n`` short labelled prompts from the pool (what an operator would label), or suite variants without data."""
    try:
        from calibroute.classify.corpus import load_pool
        from calibroute.datasets import data_root

        pool = [(e.label, e.text) for e in load_pool(data_root() / "prompts") if len(e.text) <= 400]
    except Exception:  # noqa: BLE001 - no data: fall back to synthetic variants, said in the output
        pool = [(cls, f"{prompt} (variant {v})") for v in range(10) for prompt, cls in suite]
        print("(no labelled pool under $CALIBROUTE_DATA: latency examples are suite variants)")
    random.Random(0).shuffle(pool)
    return pool[:n]


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1e6
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def time_calls(fn: Callable[[str], object], prompts: Sequence[str], out: list[float]) -> None:
    for p in prompts:
        t0 = time.perf_counter()
        fn(p)
        out.append(time.perf_counter() - t0)


def latency(suite: Sequence[tuple[str, str]], sizes: Sequence[int], rounds: int) -> list[str]:
    prompts = [p for p, _ in suite]
    routers = {0: Router(load_portfolio())} | {n: router_with(latency_examples(n, suite), 0.8) for n in sizes}
    decide: dict[int, list[float]] = {n: [] for n in routers}
    match: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):  # interleaved: every configuration sees the same machine load
        for n, router in routers.items():
            time_calls(lambda p, r=router: r.decide(prompt=p), prompts, decide[n])
        for n in sizes:
            matcher = routers[n].examples
            assert isinstance(matcher, ExampleMatcher)
            feat = featurizer_of(routers[n].classifier)

            def match_only(p: str, m: ExampleMatcher = matcher) -> None:
                m.match(p)

            for p in prompts:
                feat.sparse(p)  # memoised, as the classifier's call leaves it in the router
                time_calls(match_only, [p], match[n])
    base50, base99 = percentiles(decide[0])
    lines = ["| examples | Router.decide p50 µs | p99 µs | p50 vs none | matcher alone p50 µs | p99 µs |", "|---:|---:|---:|---:|---:|---:|"]
    lines.append(f"| 0 | {base50:.0f} | {base99:.0f} | 1.00x | - | - |")
    for n in sizes:
        d50, d99 = percentiles(decide[n])
        m50, m99 = percentiles(match[n])
        lines.append(f"| {n} | {d50:.0f} | {d99:.0f} | {d50 / base50:.2f}x | {m50:.0f} | {m99:.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.8")
    ap.add_argument("--per-class", default="5,all", help="examples per class taken from the example fold")
    ap.add_argument("--sizes", default="100,1000", help="example counts for the latency run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    suite = load_suite()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    per_class = [None if v == "all" else int(v) for v in args.per_class.split(",")]

    n = len(suite)
    print(f"Misroute suite: {n} prompts, {args.folds}-fold by prompt (stratified), min_confidence {MIN_CONFIDENCE:.2f}.\n")
    print("| examples per class | example_min_similarity | routed as expected | GENERAL fallback | mild | severe | decided by an example (right) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = evaluate(suite, args.folds, 0, None)
    print(f"| none | - | {base['ok']} ({base['ok'] / n:.2f}) | {base['fallback']} | {base['mild']} | {base['severe']} | 0 |")
    for pc in per_class:
        for t in thresholds:
            c = evaluate(suite, args.folds, pc, t)
            label = "all" if pc is None else str(pc)
            print(f"| {label} | {t:.2f} | {c['ok']} ({c['ok'] / n:.2f}) | {c['fallback']} | {c['mild']} | {c['severe']} "
                  f"| {c['matched']} ({c['matched_right']}) |")
    print()
    print("\n".join(similarity_profile(suite, args.folds, thresholds)))
    if not args.skip_latency:
        print(f"\nAdded latency, {len(suite)} suite prompts x {args.rounds} rounds, interleaved:\n")
        print("\n".join(latency(suite, [int(s) for s in args.sizes.split(",")], args.rounds)))


if __name__ == "__main__":
    main()
