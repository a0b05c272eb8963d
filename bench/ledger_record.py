"""Ledger write path: record() latency, rows/s from record to close, authenticate() latency.

Usage: nice python bench/ledger_record.py [URL]   (a SQLite path, or e.g. $CALIBROUTE_TEST_PG_URL)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from calibroute.ledger import open_ledger
from calibroute.ledger.base import LedgerRow

N = 20_000


def main(url: str) -> None:
    ledger = open_ledger(url)
    key, token = ledger.create_key("bench")
    times = []
    t0 = time.perf_counter()
    for i in range(N):
        row = LedgerRow(request_id=f"b{i}", status="ok", http_status=200, task_class="SIMPLE", model="m",
                        cost_usd=1e-4, baseline_cost_usd=1e-3, api_key_id=key.id, fallback_path=["m"])
        start = time.perf_counter()
        ledger.record(row)
        times.append(time.perf_counter() - start)
    ledger.close()
    elapsed = time.perf_counter() - t0
    reader = open_ledger(url)
    auth = []
    for _ in range(N):
        start = time.perf_counter()
        reader.authenticate(token)
        auth.append(time.perf_counter() - start)
    reader.close()
    q, qa = statistics.quantiles(times, n=100), statistics.quantiles(auth, n=100)
    print(f"record p50 {q[49] * 1e6:.1f} us p99 {q[98] * 1e6:.1f} us; {N / elapsed:.0f} rows/s; "
          f"authenticate p50 {qa[49] * 1e6:.1f} us p99 {qa[98] * 1e6:.1f} us")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp() + "/bench.db")
