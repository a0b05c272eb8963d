"""Per-class ``routing.min_confidence`` calibrated to a precision target, on the training pool's held-out logits.

    nice python bench/classifier_thresholds.py [--data DIR] [--targets 0.85,0.90,0.95] [--min-support 30] [--suite]

Held-out predictions come from exactly the rows the shipped temperature is fitted on (``training.train_variant``):
20% of the groups held out whole, plus each chat source left out in turn (LOSO), each scored by a model of the shipped
recipe (``TrainConfig()``, lexical) fitted without them; the shipped artifact's temperature is applied. For each
predicted class the threshold is the lowest confidence t such that, at t and at every higher grid point that still has
``--min-support`` routed rows, the precision of the rows routed to that class (predicted it, confidence >= t) is at
least the target. GENERAL needs none: a GENERAL prediction takes the GENERAL route either way.

Compared with the global 0.70: routed-as-classified share and misroute rate (routed to a wrong specialised class;
severe = REASONING on one side, as in bench/classifier_misroutes.py), on the grouped held-out rows and on the LOSO rows.
``--suite`` adds the misroute suite (tests/data/misroute_suite.jsonl), the independent check; it is never used to
choose a threshold. Needs scikit-learn (train-time extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from calibroute.classify.corpus import CHAT_SOURCES, CLASSES, grouped_split
from calibroute.classify.linear import (
    ARTIFACT_DIR,
    LinearArtifact,
    artifact_name,
    softmax,
)
from calibroute.classify.training import (
    FeatureCache,
    TrainConfig,
    load_training_rows,
    train_variant,
)
from calibroute.config import DEFAULT_MIN_CONFIDENCE, RoutingSettings
from calibroute.datasets import data_root

GENERAL, REASONING = CLASSES.index("GENERAL"), CLASSES.index("REASONING")
GRID = np.round(np.arange(0.30, 0.96, 0.01), 2)
SPECIALISED = [c for c in CLASSES if c != "GENERAL"]
SET_NAMES = {"groups": "groups", "loso": "LOSO"}


def held_out_logits(cache: FeatureCache, cfg: TrainConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"groups": (logits, y), "loso": (logits, y)}``: the held-out sets ``train_variant`` fits the temperature on."""
    rows = cache.rows
    fit_rows, calib_rows = grouped_split(rows, cfg.calib_share, seed=cfg.seed + 1)
    pos = {id(ex): i for i, ex in enumerate(rows)}
    fit_idx, calib_idx = (np.asarray([pos[id(ex)] for ex in part], dtype=np.int64) for part in (fit_rows, calib_rows))
    sources = np.asarray([ex.source for ex in rows])
    everything = np.arange(len(rows))
    loso = [(everything[sources != s], everything[sources == s]) for s in CHAT_SOURCES if (sources == s).any()]

    def score(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        art = train_variant(cache, train_idx, "lexical", cfg, calibrate=False)
        assert art.w_hash is not None
        return np.asarray(cache.matrix(test_idx, "lexical") @ art.w_hash) + art.bias

    loso_z = [score(tr, te) for tr, te in loso]
    return {
        "groups": (score(fit_idx, calib_idx), cache.y[calib_idx]),
        "loso": (np.vstack(loso_z), np.concatenate([cache.y[te] for _, te in loso])),
    }


def class_threshold(prob: np.ndarray, y: np.ndarray, cls: int, target: float, min_support: int) -> float | None:
    """Lowest grid t whose routed precision, and that of every supported higher t, reaches ``target``."""
    conf, pred = prob.max(1), prob.argmax(1)
    best: float | None = None
    for t in GRID[::-1]:  # from the top: stop at the first supported t that misses the target
        routed = (pred == cls) & (conf >= t)
        if routed.sum() < min_support:
            continue
        if (y[routed] == cls).mean() < target:
            break
        best = float(t)
    return best


def fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def thresholds_setting(found: dict[str, float | None]) -> RoutingSettings:
    """Per-class routing settings; a class whose target is never reached is never routed (threshold 1.0)."""
    mapping = {c: 1.0 if t is None else t for c, t in found.items()}
    return RoutingSettings(min_confidence={**mapping, "GENERAL": 0.0})


def route(prob: np.ndarray, routing: RoutingSettings) -> np.ndarray:
    conf, pred = prob.max(1), prob.argmax(1)
    bars = np.asarray([routing.threshold_for(c) for c in CLASSES])
    return np.where(conf >= bars[pred], pred, GENERAL)


def outcome_cells(prob: np.ndarray, y: np.ndarray, routing: RoutingSettings) -> str:
    """routed as classified / misrouted (wrong specialised class) / severe (REASONING on one side) / correct."""
    routed = route(prob, routing)
    kept = (routed != GENERAL) | (prob.argmax(1) == GENERAL)
    wrong = (routed != y) & (routed != GENERAL)
    severe = wrong & (y != GENERAL) & ((routed == REASONING) | (y == REASONING))
    return f"{kept.mean():.1%} | {wrong.mean():.1%} | {severe.mean():.1%} | {(routed == y).mean():.1%}"


def label(routing: RoutingSettings) -> str:
    if isinstance(routing.min_confidence, float):
        return f"global {routing.min_confidence:.2f}"
    return " / ".join(f"{c[0]} {routing.threshold_for(c):.2f}" for c in SPECIALISED)


def suite_rows(candidates: list[tuple[str, RoutingSettings]]) -> list[str]:
    """The misroute suite through the shipped classifier at each candidate setting."""
    from collections import Counter

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from classifier_misroutes import load_suite, run

    from calibroute.classify import load_classifier

    outcomes = run(load_classifier("default"), load_suite())
    lines = [
        f"Misroute suite ({len(outcomes)} prompts, shipped classifier):",
        "",
        "| setting | thresholds | routed as expected | GENERAL fallback | mild | severe |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, routing in candidates:
        sev = Counter(o.severity(routing) for o in outcomes)
        lines.append(f"| {name} | {label(routing)} | {sev['ok']} | {sev['fallback']} | {sev['mild']} | {sev['severe']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--targets", default="0.85,0.90,0.95", help="comma list of precision targets")
    ap.add_argument("--min-support", type=int, default=30, help="routed rows a threshold needs to count")
    ap.add_argument("--suite", action="store_true", help="also run the misroute suite (the independent check)")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    cfg = TrainConfig()
    rows = load_training_rows(args.data or data_root(), cfg)
    cache = FeatureCache(rows, cfg.featurizer(), None)
    temperature = LinearArtifact.load(ARTIFACT_DIR / artifact_name("lexical")).temperature
    sets = {name: (softmax(z / temperature), y) for name, (z, y) in held_out_logits(cache, cfg).items()}
    pooled = (np.vstack([p for p, _ in sets.values()]), np.concatenate([y for _, y in sets.values()]))
    print(f"Pool {len(rows)} rows; held-out rows: groups {sets['groups'][1].size}, LOSO {sets['loso'][1].size}; "
          f"shipped temperature {temperature:.3f}; min support {args.min_support}.\n")

    print("Lowest threshold reaching the precision target (fitted on groups + LOSO pooled; groups / LOSO alone in brackets):\n")
    print("| target | " + " | ".join(SPECIALISED) + " |")
    print("|---:|" + "---:|" * len(SPECIALISED))
    candidates: list[tuple[str, RoutingSettings]] = [("global", RoutingSettings(min_confidence=DEFAULT_MIN_CONFIDENCE))]
    loso_candidates: list[tuple[str, RoutingSettings]] = []
    for target in targets:
        found = {
            fit_on: {c: class_threshold(*data, CLASSES.index(c), target, args.min_support) for c in SPECIALISED}
            for fit_on, data in (("pooled", pooled), *sets.items())
        }
        cells = [" ".join([fmt(found["pooled"][c]), f"({fmt(found['groups'][c])} / {fmt(found['loso'][c])})"]) for c in SPECIALISED]
        print(f"| {target:.2f} | " + " | ".join(cells) + " |")
        candidates.append((f"precision {target:.2f}", thresholds_setting(found["pooled"])))
        loso_candidates.append((f"precision {target:.2f}, LOSO-fitted", thresholds_setting(found["loso"])))
    candidates += loso_candidates

    head = " | ".join(f"{SET_NAMES[s]}: {h}" for s in sets for h in ("routed as classified", "misrouted", "severe", "correct route"))
    print(f"\n| setting | thresholds | {head} |")
    print("|---|---|" + "---:|" * 8)
    for name, routing in candidates:
        cells = " | ".join(outcome_cells(p, y, routing) for p, y in sets.values())
        print(f"| {name} | {label(routing)} | {cells} |")
    if args.suite:
        print("\n" + "\n".join(suite_rows(candidates)))


if __name__ == "__main__":
    main()
