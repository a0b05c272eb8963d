"""Reproduce every evaluation figure: `python bench/eval_all.py [--router pretrained|cv] [--out DIR]`.

Runs `calibroute eval` on each shared dataset, writes PNG/CSV/JSON under DIR (default
bench/out/eval, not committed) and prints one summary line per dataset and strategy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATASETS = ("routellm-gsm8k", "routellm-mmlu", "routerbench", "dcrouter", "routerarena")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", default="pretrained", choices=("pretrained", "cv"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/eval"))
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = ap.parse_args()
    for name in args.datasets:
        js = args.out / f"{name}-{args.router}.json"
        start = time.perf_counter()
        subprocess.run(["calibroute", "eval", name, "--router", args.router, "--out", str(args.out), "--json", str(js)],
                       check=True, stdout=subprocess.DEVNULL)
        took = time.perf_counter() - start
        data = json.loads(js.read_text())
        print(f"## {name} ({data['n_prompts']} prompts, {took:.0f} s wall) best={data['best_model']['name']}")
        for sname, s in data["strategies"].items():
            fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"{sname:50s} apgr={fmt(s['apgr'])} cpt50={fmt(s['cpt50'])} cpt80={fmt(s['cpt80'])} "
                  f"aiq={fmt(s['aiq'])} saved@95={fmt(s['cost_saved_at_95pct_quality'])} "
                  f"calls_saved@95={fmt(s.get('strong_calls_saved_at_95pct_quality'))}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
