"""Fit the roofline's fitted constants on the ``split: fit`` validation cases and report both splits.

Usage: PYTHONPATH=src python bench/economics_fit.py [--rounds 3]

Coordinate descent on a log grid per constant, minimising the mean |log(predicted / measured)|
over the fit cases only. Holdout cases are never seen by the search; their error is printed
after. The result is what ``Efficiency`` / gpus.yaml / validation.yaml carry (docs/economics.md).
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import replace

from calibroute.economics.catalog import load_catalog
from calibroute.economics.roofline import Efficiency
from calibroute.economics.validate import Case, load_cases, run_case

EFF_KNOBS = ("kernel_us", "moe", "expert_skew", "host_us_per_seq", "fp4")
GPU_KNOBS = (("mi300x", "launch_scale"), ("mi300x", "hbm_scale"), ("mi355x", "launch_scale"), ("gb200", "host_scale"))
SPEC_KNOB = "inferencex_acceptance"


def predict(case: Case, eff: Efficiency, gpu_over: dict, acceptance: float) -> float:
    catalog = load_catalog()
    gpus = dict(catalog.gpus)
    for (gid, field), value in gpu_over.items():
        gpus[gid] = gpus[gid].model_copy(update={field: value})
    cat = catalog.model_copy(update={"gpus": gpus})
    if case.speculative and case.ref == "inferencex":
        case = case.model_copy(update={"speculative": f"mtp:3:{acceptance}"})
    return run_case(case, cat, eff)[0]


def loss(cases: list[Case], eff: Efficiency, gpu_over: dict, acceptance: float) -> float:
    return statistics.mean(abs(math.log(predict(c, eff, gpu_over, acceptance) / c.measured)) for c in cases)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cases, _ = load_cases()
    fit = [c for c in cases if c.split == "fit"]
    catalog = load_catalog()
    eff, acc = Efficiency(), 0.7
    gpu_over = {(g, f): getattr(catalog.gpu(g), f) for g, f in GPU_KNOBS}  # start from the shipped values
    for rnd in range(args.rounds):
        for knob in (*EFF_KNOBS, *GPU_KNOBS, SPEC_KNOB):
            if knob == SPEC_KNOB:
                grid = [x / 20 for x in range(0, 19)]
                best = min(grid, key=lambda v: loss(fit, eff, gpu_over, v))
                acc = best
            elif isinstance(knob, tuple):
                cur = gpu_over[knob]
                grid = [cur * 2 ** (i / 8) for i in range(-8, 9)]
                best = min(grid, key=lambda v: loss(fit, eff, {**gpu_over, knob: v}, acc))
                gpu_over[knob] = best
            else:
                cur = getattr(eff, knob)
                grid = [cur * 2 ** (i / 8) for i in range(-8, 9)] if cur > 0 else [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
                if knob in ("moe", "fp4"):
                    grid = [min(v, 1.0) for v in grid]
                best = min(grid, key=lambda v: loss(fit, replace(eff, **{knob: v}), gpu_over, acc))
                eff = replace(eff, **{knob: best})
        print(f"round {rnd + 1}: loss {loss(fit, eff, gpu_over, acc):.4f}")
    print("Efficiency:", {k: round(getattr(eff, k), 4) for k in EFF_KNOBS})
    print("GPU overrides:", {f"{g}.{f}": round(v, 3) for (g, f), v in gpu_over.items()})
    print("InferenceX MTP acceptance:", acc)
    for split in ("fit", "holdout"):
        for kind in ("dense", "moe"):
            rows = [c for c in cases if c.split == split and (load_catalog().model(c.model).kind == kind)]
            if rows:
                errs = [abs(predict(c, eff, gpu_over, acc) / c.measured - 1) for c in rows]
                print(f"{split:8} {kind:5} n={len(rows):2} median {statistics.median(errs):.1%} worst {max(errs):.1%}")


if __name__ == "__main__":
    main()
