"""What a spend reservation adds to a request: one ``calibroute serve`` (real process) in front of
a fake backend, sequential requests with a key without a spend limit and with one (which
reserves in the ledger database before the backend call), on SQLite and on PostgreSQL.

    python bench/spend_reservation_latency.py --requests 500 [--pg]   # --pg: $CALIBROUTE_TEST_PG_URL too
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cluster import BODY, cluster, wait_for_key  # noqa: E402
from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml, serve_models, standard_fakes  # noqa: E402
from test_ledger_db import _pg_schema_url  # noqa: E402

from calibroute.ledger import open_ledger  # noqa: E402


def timed(url: str, token: str, n: int) -> dict[str, float]:
    ms = []
    with httpx.Client() as c:
        for _ in range(n):
            t = time.perf_counter()
            r = c.post(url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}, timeout=30)
            ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    ms.sort()
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3)}


def measure(config: Path, ledger: str, n: int) -> dict[str, dict[str, float]]:
    with cluster(config, ledger, 1, haproxy=False) as c:
        with open_ledger(ledger) as admin:
            _, free = admin.keys.create("no-limit")
            _, limited = admin.keys.create("limited", spend_limit_usd=1e6)
        wait_for_key(c, free)
        wait_for_key(c, limited)
        timed(c.url, free, 50)  # warm-up
        out = {}
        for _ in range(2):  # interleaved, so drift on a shared machine hits both
            out.setdefault("no limit", []).append(timed(c.url, free, n))  # type: ignore[arg-type]
            out.setdefault("spend limit (reserves)", []).append(timed(c.url, limited, n))  # type: ignore[arg-type]
    return {k: {"p50_ms": statistics.median(r["p50_ms"] for r in v), "p99_ms": statistics.median(r["p99_ms"] for r in v)}  # type: ignore[attr-defined]
            for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--pg", action="store_true", help="also on PostgreSQL ($CALIBROUTE_TEST_PG_URL)")
    args = ap.parse_args()
    fakes = standard_fakes()
    results = {}
    with serve_models(*fakes.values()) as urls, tempfile.TemporaryDirectory() as work:
        config = Path(work) / "portfolio.yaml"
        config.write_text(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
        results["sqlite"] = measure(config, str(Path(work) / "ledger.db"), args.requests)
        print("sqlite", json.dumps(results["sqlite"]), flush=True)
        if args.pg:
            gen = _pg_schema_url()
            try:
                results["postgresql"] = measure(config, next(gen), args.requests)
            finally:
                gen.close()
            print("postgresql", json.dumps(results["postgresql"]), flush=True)


if __name__ == "__main__":
    main()
