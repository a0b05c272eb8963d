"""Time every dashboard endpoint over HTTP against a big ledger (issue 16: 10M rows, < 1 s).

Seeds ``--rows`` synthetic requests spread evenly over ``--days`` days ending now (schema from
``open_ledger``; SQLite: rows written with sqlite3 ``executemany`` in big transactions; PostgreSQL
(``--pg URL`` of an empty database): generated server-side, ``dashboard_seed_pg.py``; indexes
dropped during the load and rebuilt after), then serves ``calibroute dashboard``'s app on 127.0.0.1
and times each ``/ui/api/...`` endpoint for several windows (median of ``--repeat`` runs, cold
first run reported separately). Re-running with the same ``--db`` / ``--pg`` reuses the seeded
rows. ``--catch-up`` forgets the rollups first and times the app's background first rollup
instead (how soon the app answers, what the endpoints answer meanwhile, when it is done).

    nice python bench/dashboard_queries.py --rows 10000000 --db /tmp/ledger-10m.db
    nice python bench/dashboard_queries.py --rows 10000000 --pg postgresql://user:pw@127.0.0.1/bench10m
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"), str(Path(__file__).resolve().parent)]
from dashboard_seed_pg import seed_postgres
from servers import serve_in_thread

from calibroute.config import load_portfolio
from calibroute.gateway.ui import dashboard_app
from calibroute.ledger import open_ledger, rollup

CLASSES = {"SIMPLE": ["small", "mid"], "REASONING": ["thinker", "effort", "claude"], "OPEN_ENDED": ["mid", "small"],
           "GENERAL": ["mid", "effort"]}
RULES = ["classified"] * 17 + ["low_confidence", "escalated", "explicit_model"]
COLUMNS = ("request_id", "created_at", "api_key_id", "status", "http_status", "task_class", "model", "route_rule", "budget",
           "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_usd", "baseline_cost_usd", "latency_ms",
           "fallback_path", "stream", "error", "prompt", "confidence", "reason")


KEYS = [f"key{i:02d}" for i in range(20)] + [None] * 5


def rows(n: int, start: datetime, span_s: float, seed: int = 7):
    rng = random.Random(seed)
    classes = list(CLASSES)
    keys = KEYS
    step = span_s / n
    for i in range(n):
        cls = classes[i % 4]
        model = rng.choice(CLASSES[cls])
        ok = rng.random() > 0.02
        p, c = rng.randint(20, 2000), rng.randint(10, 1000)
        r = c // 2 if cls == "REASONING" else 0
        cost = (p + c) * 1e-6
        fell = rng.random() < 0.03
        when = (start + timedelta(seconds=i * step)).strftime("%Y-%m-%d %H:%M:%S.%f")
        yield (f"b{i:09d}", when, keys[i % len(keys)], "ok" if ok else "error", 200 if ok else 502, cls, model,
               RULES[i % len(RULES)], "max 1024 tok", p, c, r, cost, cost * 6, rng.lognormvariate(6, 0.6),
               f'["x", "{model}"]' if fell else f'["{model}"]', 0, None if ok else "backend 502", None,
               round(rng.uniform(0.4, 1.0), 3), f"{cls}: routed to {model}")


def seed(db: Path, n: int, days: float) -> float:
    open_ledger(str(db)).close()  # schema and migrations as the gateway makes them
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='requests' AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        con.execute(f"DROP INDEX {name}")
    sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    end = datetime.now(UTC)
    gen = rows(n, end - timedelta(days=days), days * 86400)
    batch = 200_000
    done = 0
    while done < n:
        chunk = [next(gen) for _ in range(min(batch, n - done))]
        with con:
            con.executemany(sql, chunk)
        done += len(chunk)
        print(f"  seeded {done:,} rows ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    for _, create in indexes:
        con.execute(create)
    con.execute("ANALYZE")
    con.commit()
    con.close()
    return time.perf_counter() - t0


ENDPOINTS = [
    ("summary", {}), ("spend", {}), ("spend", {"by": "class"}), ("spend", {"by": "model"}), ("spend", {"by": "key"}),
    ("flows", {}), ("latency", {}), ("errors", {}), ("requests", {"limit": "50"}),
    ("requests", {"limit": "50", "model": "claude"}), ("requests", {"limit": "50", "status": "error"}),
    ("requests", {"limit": "50", "key": "key07"}), ("requests", {"limit": "50", "rule": "escalated"}),
    ("requests", {"limit": "50", "rule": "never_used"}),  # a value no row has: the worst case for a filter
    ("status", {}),
]


def open_seeded(args: argparse.Namespace) -> tuple[object, str]:
    """The ledger, seeded first if it holds no rows; and a line that describes it."""
    from sqlalchemy import func, select, text

    from calibroute.ledger import tables

    location = args.pg or str(args.db)
    if args.pg is None and not args.db.exists():
        print(f"seeding {args.rows:,} rows into {args.db}", file=sys.stderr)
        print(f"seeded in {seed(args.db, args.rows, args.days):.0f} s", file=sys.stderr)
    ledger = open_ledger(location, must_exist=args.pg is None)
    with ledger.engine.connect() as conn:
        empty = conn.execute(select(tables.requests.c.id).limit(1)).first() is None
    if args.pg is not None and empty:
        print(f"seeding {args.rows:,} rows into {ledger.location}", file=sys.stderr)
        print(f"seeded in {seed_postgres(ledger.engine, args.rows, args.days, KEYS, RULES):.0f} s", file=sys.stderr)
    with ledger.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(tables.requests)).scalar_one()
        if args.pg is None:
            where = f"SQLite {sqlite3.sqlite_version}, {args.db.stat().st_size / 1e9:.2f} GB"
        else:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            size = conn.execute(text("SELECT pg_total_relation_size('requests')")).scalar_one()
            where = f"PostgreSQL {version}, requests {size / 1e9:.2f} GB with indexes"
    return ledger, f"ledger: {total:,} rows over {args.days:g} days, {where}"


def reset_rollups(engine: Any) -> None:
    """Forget the rollups, as on a ledger written before they existed."""
    from calibroute.ledger import tables

    with engine.begin() as conn:
        for table in (tables.requests_hourly, tables.requests_hourly_by_key, tables.rollup_state):
            conn.execute(table.delete())


def watch_catch_up(base: str, http: httpx.Client, started: float) -> None:
    """While the app's background first rollup runs: how soon it answers, what each endpoint does meanwhile."""
    first = http.get(f"{base}/ui/api/status").json()["rollup"]
    print(f"first answer {time.perf_counter() - started:.2f} s after the app was started (rollup {first['state']})")
    during: dict[str, list[float]] = {}
    codes: dict[str, set[int]] = {}
    while http.get(f"{base}/ui/api/status").json()["rollup"]["state"] not in ("done", "failed", "stopped"):
        for path in ("summary", "latency", "requests"):
            t0 = time.perf_counter()
            r = http.get(f"{base}/ui/api/{path}", params={"since": "24h"} if path != "requests" else {})
            during.setdefault(path, []).append(time.perf_counter() - t0)
            codes.setdefault(path, set()).add(r.status_code)
        time.sleep(1.0)
    print(f"background first rollup done {time.perf_counter() - started:.1f} s after start")
    for path, times in during.items():
        print(f"  during it, {path}: HTTP {sorted(codes[path])}, median {statistics.median(times):.3f} s over {len(times)} calls")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=30.0, help="the rows are spread over this many days, ending now")
    ap.add_argument("--db", type=Path, default=Path("/tmp/calibroute-dashboard-bench.db"))
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL (an empty database is seeded) instead of --db")
    ap.add_argument("--windows", default="1h,24h,7d,30d")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--catch-up", action="store_true",
                    help="forget the rollups first and time the app's background first rollup (rollup_catchup.py)")
    args = ap.parse_args()
    ledger, described = open_seeded(args)
    print(described)
    if args.catch_up:
        reset_rollups(ledger.engine)
    else:
        t0 = time.perf_counter()
        rollup.refresh(ledger.engine)  # once per ledger, in the foreground: what the catch-up thread does
        print(f"rollup catch-up in the foreground: {time.perf_counter() - t0:.1f} s\n")
    try:
        started = time.perf_counter()
        with serve_in_thread(dashboard_app(ledger, load_portfolio(None), "127.0.0.1")) as base, httpx.Client(timeout=300) as http:
            if args.catch_up:
                watch_catch_up(base, http, started)
            print("| window | endpoint | rows in window | cold s | warm s (median) |")
            print("|---|---|---:|---:|---:|")
            for window in args.windows.split(","):
                in_window = http.get(f"{base}/ui/api/summary", params={"since": window}).json()["requests"]
                for path, params in ENDPOINTS:
                    q = {**params, "since": window} if path not in ("requests", "status") else params
                    times = []
                    for _ in range(args.repeat + 1):
                        t0 = time.perf_counter()
                        r = http.get(f"{base}/ui/api/{path}", params=q)
                        times.append(time.perf_counter() - t0)
                        r.raise_for_status()
                    label = path + "".join(f" {k}={v}" for k, v in params.items() if k != "limit")
                    print(f"| {window} | {label} | {in_window:,} | {times[0]:.3f} | {statistics.median(times[1:]):.3f} |",
                          flush=True)
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
