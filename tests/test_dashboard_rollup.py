"""The dashboard's hourly rollups: exact totals as rows keep arriving, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from dashboard_seed import EXPECTED, H10, SEED_ROWS, SINCE, UNTIL, seed_ledger
from sqlalchemy import func, select
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.ledger import dashboard_queries as q
from calibroute.ledger import open_ledger, rollup, tables

WINDOW = q.Window.parse(SINCE, UNTIL)


def test_totals_stay_exact_as_rows_arrive(ledger_url: str) -> None:
    seed_ledger(ledger_url)
    with open_ledger(ledger_url) as ledger:
        first = q.summary(ledger.engine, WINDOW)
        assert (first["requests"], first["cost_usd"]) == (EXPECTED["requests"], pytest.approx(EXPECTED["cost_usd"]))
        with ledger.engine.connect() as conn:
            rolled = conn.execute(select(func.sum(tables.requests_hourly.c.requests))).scalar()
            assert rolled == len(SEED_ROWS) and rollup.last_id(conn) == len(SEED_ROWS)
        ledger.record(row(100, task_class="SIMPLE", model="small-chat", cost_usd=0.5, baseline_cost_usd=1.0,
                          created_at=H10, fallback_path=["a", "b"]))
    with open_ledger(ledger_url) as ledger:
        again = q.summary(ledger.engine, WINDOW)
        by_class = {p["group"]: p for p in q.spend_series(ledger.engine, WINDOW, "class")["points"]
                    if p["bucket"] == "2026-11-10T10:00:00Z"}
        keyed = q.spend_series(ledger.engine, WINDOW, "key")["points"]
    assert again["requests"] == EXPECTED["requests"] + 1 and again["fallbacks"] == EXPECTED["fallbacks"] + 1
    assert again["cost_usd"] == pytest.approx(EXPECTED["cost_usd"] + 0.5)
    assert by_class["SIMPLE"]["requests"] == 1 and by_class["REASONING"]["requests"] == 2
    assert sum(p["requests"] for p in keyed) == EXPECTED["requests"] + 1


def test_rows_not_rolled_up_yet_are_counted_live(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_ledger(ledger_url)
    with open_ledger(ledger_url) as ledger:
        monkeypatch.setattr(rollup, "refresh", lambda engine: None)
        live = q.summary(ledger.engine, WINDOW)  # nothing rolled up: every row read live
        live_flows = q.class_flows(ledger.engine, WINDOW)
        monkeypatch.undo()
        rolled = q.summary(ledger.engine, WINDOW)
        ledger.record(row(100, task_class="GENERAL", model="mid-reasoner", created_at=H10, status="error",
                          http_status=504))
    with open_ledger(ledger_url) as ledger:
        monkeypatch.setattr(rollup, "refresh", lambda engine: None)
        mixed = q.summary(ledger.engine, WINDOW)  # the seed from the rollup, the new row live
        errors = q.errors_series(ledger.engine, WINDOW)["points"]
    assert live == rolled and live["requests"] == EXPECTED["requests"]
    assert live_flows["class_mix"] == {"OPEN_ENDED": 1, "REASONING": 2, "SIMPLE": 2}
    assert (mixed["requests"], mixed["errors"]) == (EXPECTED["requests"] + 1, EXPECTED["errors"] + 1)
    assert {p["kind"]: p["requests"] for p in errors} == {"error/502": 1, "error/504": 1}


def test_an_empty_window_is_zero(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        s = q.summary(ledger.engine, q.Window.parse("2020-01-01", "2020-01-02"))
        assert (s["requests"], s["cost_usd"], s["fallback_share"]) == (0, 0.0, None)
        assert q.spend_series(ledger.engine, q.Window.parse("2020-01-01", "2020-01-02"))["points"] == []


def test_window_is_whole_hours() -> None:
    w = q.Window.parse("2026-11-10T09:15:00", "2026-11-10T10:40:00")
    assert (w.since, w.until) == (datetime.fromisoformat("2026-11-10T09:00:00+00:00"),
                                  datetime.fromisoformat("2026-11-10T11:00:00+00:00"))


def test_latency_and_recent_requests(ledger_url: str) -> None:
    seed_ledger(ledger_url)
    with open_ledger(ledger_url) as ledger:
        lat = {m["model"]: (m["p50_ms"], m["p95_ms"]) for m in q.latency(ledger.engine, WINDOW)["models"]}
        newest = q.recent(ledger.engine, 2)["requests"]
        errors = q.recent(ledger.engine, 10, {"status": "error"})["requests"]
        older = q.recent(ledger.engine, 10, {"class": "SIMPLE"}, before_id=newest[-1]["id"])["requests"]
    assert lat == {"big-thinker": (2000.0, 2000.0), "mid-reasoner": (900.0, 900.0), "small-chat": (100.0, 300.0)}
    assert [r["request_id"] for r in newest] == ["seed-6", "seed-5"]
    assert [r["request_id"] for r in errors] == ["seed-5"] and errors[0]["error"] == "backend 502"
    assert [r["request_id"] for r in older] == ["seed-2", "seed-1"]
    assert newest[0]["created_at"].startswith("2026-11-09T23:59:00")


def test_concurrent_refreshes_count_each_row_once(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(rollup, "CHUNK", 97)
    with open_ledger(ledger_url) as ledger:
        for i in range(2000):
            ledger.record(row(i, task_class="SIMPLE", model=f"m{i % 3}", cost_usd=0.001, created_at=H10))
    with open_ledger(ledger_url) as ledger:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: rollup.refresh(ledger.engine), range(4)))
        with ledger.engine.connect() as conn:
            rolled = conn.execute(select(func.sum(tables.requests_hourly.c.requests))).scalar()
            keyed = conn.execute(select(func.sum(tables.requests_hourly_by_key.c.requests))).scalar()
            assert rollup.last_id(conn) == 2000
        assert rolled == keyed == 2000
        assert q.summary(ledger.engine, WINDOW)["requests"] == 2000


def test_a_ledger_from_before_m008_gets_the_key_and_rule_indexes(ledger_url: str) -> None:  # noqa: F811
    from sqlalchemy import inspect, text

    from calibroute.ledger.migrations import migrate_engine
    from calibroute.ledger.store import make_engine, resolve_url

    seed_ledger(ledger_url)
    engine = make_engine(resolve_url(ledger_url))
    with engine.begin() as conn:  # back to the indexes before m008
        for name in ("ix_requests_api_key_id_id", "ix_requests_route_rule_id"):
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("CREATE INDEX ix_requests_api_key_id ON requests (api_key_id)"))
        conn.execute(text("DELETE FROM calibroute_migrations WHERE name = 'm008_key_and_rule_indexes'"))
    assert migrate_engine(engine) == ["m008_key_and_rule_indexes"]
    with engine.connect() as conn:
        names = {ix["name"] for ix in inspect(conn).get_indexes("requests")}
    assert {"ix_requests_api_key_id_id", "ix_requests_route_rule_id"} <= names and "ix_requests_api_key_id" not in names
    escalated = q.recent(engine, 10, {"rule": "escalated"})["requests"]
    assert [r["request_id"] for r in escalated] == ["seed-3"]
    assert q.recent(engine, 10, {"key": "nobody"})["requests"] == []
    engine.dispose()
