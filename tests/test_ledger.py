"""Recording: rows round-trip, record() never waits for the database, close() flushes."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.ledger import LedgerRow, open_ledger, tables
from calibroute.ledger import sink as sink_module
from calibroute.ledger.store import count_rows
from calibroute.ledger.writer import BatchWriter


def _rows(ledger_url: str) -> list[dict[str, object]]:
    with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        result = conn.execute(select(tables.requests).order_by(tables.requests.c.id))
        return [dict(r._mapping) for r in result]


def test_recorded_row_round_trips_every_field(ledger_url: str) -> None:
    when = datetime(2026, 11, 3, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    full = LedgerRow(
        request_id="r1", status="ok", http_status=200, task_class="REASONING", model="big", route_rule="escalated",
        budget="max 2048 tok, effort high", prompt_tokens=11, completion_tokens=22, reasoning_tokens=7,
        cost_usd=0.25, baseline_cost_usd=1.5, latency_ms=12.5, fallback_path=["small", "big"], stream=True,
        api_key_id="key_x", error=None, created_at=when,
    )
    with open_ledger(ledger_url) as ledger:
        ledger.record(full)
    (stored,) = _rows(ledger_url)
    assert stored["model"] == "big" and stored["task_class"] == "REASONING" and stored["stream"] is True
    assert (stored["prompt_tokens"], stored["completion_tokens"], stored["reasoning_tokens"]) == (11, 22, 7)
    assert stored["cost_usd"] == 0.25 and stored["baseline_cost_usd"] == 1.5
    assert json.loads(str(stored["fallback_path"])) == ["small", "big"]
    created = stored["created_at"]
    assert isinstance(created, datetime)
    assert tables.as_utc(created) == when  # stored as UTC, the same instant


@pytest.mark.parametrize("store_prompts", [False, True])
def test_prompt_is_stored_only_when_enabled(ledger_url: str, store_prompts: bool) -> None:
    with open_ledger(ledger_url, store_prompts=store_prompts) as ledger:
        ledger.record(row(1, prompt="my secret prompt"))
    (stored,) = _rows(ledger_url)
    assert stored["prompt"] == ("my secret prompt" if store_prompts else None)


def test_record_returns_while_the_database_write_is_stuck(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_insert = sink_module.insert_rows

    def stuck_insert(*args: object, **kwargs: object) -> dict[str, float]:
        assert release.wait(30), "test never released the writer"
        return real_insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sink_module, "insert_rows", stuck_insert)
    ledger = open_ledger(ledger_url)
    try:
        for i in range(200):  # would hang here if record() waited for the insert
            ledger.record(row(i, cost_usd=0.01))
        assert count_rows(ledger.engine) == 0  # nothing written yet: the writer is stuck
    finally:
        release.set()
        ledger.close()
    assert len(_rows(ledger_url)) == 200


def test_close_flushes_everything_queued_and_is_idempotent(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    for i in range(1234):
        ledger.record(row(i))
    ledger.close()
    ledger.close()
    assert ledger.written == 1234
    assert len(_rows(ledger_url)) == 1234


def test_record_after_close_is_counted_as_dropped_not_raised(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    ledger.close()
    ledger.record(row(1))
    assert ledger.dropped == 1


def test_concurrent_recording_from_many_threads_loses_nothing(ledger_url: str) -> None:
    threads_n, per_thread = 12, 300
    ledger = open_ledger(ledger_url)
    start = threading.Barrier(threads_n)

    def worker(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            ledger.record(row(t * per_thread + i, cost_usd=0.001 * (t + 1)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ledger.close()
    with open_ledger(ledger_url) as check, check.engine.connect() as conn:
        n, ids, cost = conn.execute(
            select(func.count(), func.count(func.distinct(tables.requests.c.request_id)), func.sum(tables.requests.c.cost_usd))
        ).one()
    assert n == ids == threads_n * per_thread
    assert cost == pytest.approx(sum(0.001 * (t + 1) * per_thread for t in range(threads_n)))


def test_failed_batch_is_retried_then_written() -> None:
    written: list[str] = []
    failures = [RuntimeError("database is locked")]

    def flaky(batch: list[LedgerRow]) -> None:
        if failures:
            raise failures.pop()
        written.extend(r.request_id for r in batch)

    writer = BatchWriter(flaky, retry_delay_s=0.001)
    for i in range(3):
        writer.submit(row(i))
    writer.close()
    assert written == ["req-0", "req-1", "req-2"] and writer.dropped == 0


def test_batch_that_keeps_failing_is_dropped_and_counted() -> None:
    def broken(batch: list[LedgerRow]) -> None:
        raise RuntimeError("disk full")

    writer = BatchWriter(broken, retry_delay_s=0.001, max_attempts=2)
    writer.submit(row(1))
    writer.close()
    assert writer.dropped == 1 and writer.written == 0


def test_writer_is_not_started_until_something_is_recorded(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    ledger = open_ledger(tmp_path / "l.db")
    assert "calibroute-ledger-writer" not in {t.name for t in threading.enumerate()} - before
    ledger.close()
