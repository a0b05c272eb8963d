"""Spend overshoot with one and two replicas, and the client error rate when a replica is killed.

Everything on 127.0.0.1: the fake OpenAI-protocol backends of tests/fake_backend.py (in
this process), ``calibroute serve`` replicas (real processes) sharing a private schema on
the PostgreSQL server at $CALIBROUTE_TEST_PG_URL, and HAProxy with the configuration of
docs/deploy.md (tests/cluster.py generates it). Everything started is stopped.

- overshoot: per round, a fresh key with a limit of 5 request estimates; 16 clients send one
  request each at once (the backend holds each for 0.3 s, so they are all in flight);
  overshoot = cost served - limit, in request estimates.
- failover: per run, a fresh pair of replicas; 16 clients loop through HAProxy; after 150
  answers replica 0 gets SIGKILL (its whole process group); 300 more answers; client errors
  counted; then replica 0 is restarted and both stopped gracefully, and answered requests
  without a ledger row are counted.

    python bench/replicas.py --rounds 5 --runs 5 [--baseline-src /tmp/before/src] --out bench/out/replicas.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cluster import burst, cluster, estimate_usd, failover_run, wait_for_key  # noqa: E402
from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml, serve_models, standard_fakes  # noqa: E402
from test_ledger_db import _pg_schema_url  # noqa: E402

from calibroute.ledger import open_ledger  # noqa: E402


def overshoot(config: Path, fakes: dict, n_replicas: int, rounds: int,  # type: ignore[type-arg]
              gateway_src: str | None = None) -> dict[str, object]:
    est = estimate_usd(config)
    served, excess = [], []
    with _pg_url() as url, cluster(config, url, n_replicas, gateway_src=gateway_src) as c:
        for i in range(rounds):
            with open_ledger(url) as admin:
                _, token = admin.keys.create(f"round-{i}", spend_limit_usd=5 * est)
            wait_for_key(c, token)
            fakes["small"].delay_s = 0.3
            try:
                answers = burst(c.url, token, 16)
            finally:
                fakes["small"].delay_s = 0.0
            ok = [r for r in answers if r.status_code == 200]
            cost = sum(float(r.headers["x-calibroute-cost-usd"]) for r in ok)
            served.append(len(ok))
            excess.append((cost - 5 * est) / est)
    return {"replicas": n_replicas, "rounds": rounds, "estimate_usd": est, "limit_usd": 5 * est,
            "served_per_round": served, "max_overshoot_estimates": max(excess), "refused_per_round": [16 - s for s in served]}


def failover(config: Path, fakes: dict, runs: int) -> list[dict[str, int]]:  # type: ignore[type-arg]
    results = []
    for _ in range(runs):
        with _pg_url() as url, cluster(config, url, 2) as c:
            load, missing = failover_run(c, url, fakes)
        results.append({"requests": len(load.answered) + len(load.failures), "failed": len(load.failures),
                        "answered_without_row": len(missing)})
        print("failover run", json.dumps(results[-1]), flush=True)
    return results


class _pg_url:
    """A private schema on $CALIBROUTE_TEST_PG_URL for one measurement, dropped after."""

    def __enter__(self) -> str:
        self._gen = _pg_schema_url()
        return next(self._gen)

    def __exit__(self, *exc: object) -> None:
        self._gen.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="overshoot rounds per replica count")
    ap.add_argument("--runs", type=int, default=3, help="failover runs (each a fresh pair of replicas)")
    ap.add_argument("--baseline-src", help="also measure overshoot with the gateway from this src directory "
                                           "(e.g. a checkout from before spend reservations)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "replicas.json")
    args = ap.parse_args()
    if not os.environ.get("CALIBROUTE_TEST_PG_URL"):
        raise SystemExit("CALIBROUTE_TEST_PG_URL is not set (.ci/setup.d/postgres.sh sets it up)")
    fakes = standard_fakes()
    with serve_models(*fakes.values()) as urls, tempfile.TemporaryDirectory() as work:
        config = Path(work) / "portfolio.yaml"
        config.write_text(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
        report: dict[str, object] = {"overshoot": []}
        for src in ([args.baseline_src] if args.baseline_src else []) + [None]:
            for n in (1, 2):
                res = {**overshoot(config, fakes, n, args.rounds, src), "gateway": src or "this checkout"}
                report["overshoot"].append(res)  # type: ignore[attr-defined]
                print("overshoot", json.dumps(res), flush=True)
        runs = failover(config, fakes, args.runs)
        total, failed = sum(r["requests"] for r in runs), sum(r["failed"] for r in runs)
        report["failover"] = {"runs": runs, "error_rate": failed / total if total else 0.0,
                              "median_answered_without_row": statistics.median(r["answered_without_row"] for r in runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["failover"]))


if __name__ == "__main__":
    main()
