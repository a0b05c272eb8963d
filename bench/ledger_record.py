"""Ledger write path: record() latency, rows/s from record to close, authenticate() latency.

Usage: nice python bench/ledger_record.py [URL] [--journal]   (a SQLite path, or e.g. $CALIBROUTE_TEST_PG_URL)

``--journal``: with the crash journal (a temporary directory), as the gateway runs it; then
``record()`` includes the append to the journal file.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from calibroute.ledger import open_ledger
from calibroute.ledger.base import LedgerRow

N = 20_000


def main(url: str, journal: bool) -> None:
    ledger = open_ledger(url, journal=tempfile.mkdtemp() if journal else False)
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
    print(f"journal {'on' if journal else 'off'}: record p50 {q[49] * 1e6:.1f} us p99 {q[98] * 1e6:.1f} us; {N / elapsed:.0f} rows/s; "
          f"authenticate p50 {qa[49] * 1e6:.1f} us p99 {qa[98] * 1e6:.1f} us")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--journal"]
    main(args[0] if args else tempfile.mkdtemp() + "/bench.db", "--journal" in sys.argv[1:])
