"""Spend limits that hold: reservations in the ledger database, through a real gateway.

A request reserves its upper-bound cost before the backend call and the reservation is
released, with the actual cost, when its ledger row is written. So with 16 concurrent
clients a key serves no more than its limit allows (overshoot <= one request's estimate),
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import openai
import pytest
from fake_backend import gateway_stack, reset
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.gateway.spend import upper_bound_usd
from calibroute.ledger import open_ledger
from calibroute.ledger.base import utcnow
from calibroute.ledger.reservations import expire_reservations, reserve, reserved_usd
from calibroute.types import Hints

PROMPT = [{"role": "user", "content": "Say hello to the whole team please"}]
MAX_TOKENS = 8


def _estimate(stack: object) -> float:
    router = stack.app.state.gateway.router  # type: ignore[attr-defined]
    decision = router.decide(messages=PROMPT, hints=Hints(model="small", max_output_tokens=MAX_TOKENS))
    return upper_bound_usd(router.portfolio, decision)


def _hammer(url: str, token: str, n: int) -> tuple[list[float], list[openai.APIStatusError]]:
    """n concurrent clients, one request each: costs of the answered ones, errors of the others."""
    costs: list[float] = []
    errors: list[openai.APIStatusError] = []
    start = threading.Barrier(n)

    def one() -> None:
        with openai.OpenAI(base_url=url, api_key=token, max_retries=0) as c:
            start.wait()
            try:
                raw = c.chat.completions.with_raw_response.create(model="small", messages=PROMPT, max_tokens=MAX_TOKENS)
                costs.append(float(raw.headers["x-calibroute-cost-usd"]))
            except openai.APIStatusError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return costs, errors


def test_reservations_admit_exactly_what_fits_under_concurrency(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, _ = ledger.create_key("k", spend_limit_usd=0.05)
        results: list[object] = []
        start = threading.Barrier(8)

        def one(i: int) -> None:
            start.wait()
            results.append(reserve(ledger.engine, key.id, f"r{i}", 0.01, ttl_s=60))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and sum(r is None for r in results) == 5
        refused = [r for r in results if r is not None]
        assert all(r.left_usd == pytest.approx(0.0, abs=1e-9) for r in refused)  # type: ignore[attr-defined]
        assert reserved_usd(ledger.engine, key.id) == pytest.approx(0.05)


def test_writing_the_row_releases_the_hold_and_charges_the_actual_cost(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, _ = ledger.create_key("k", spend_limit_usd=0.05)
        for i in range(5):
            assert reserve(ledger.engine, key.id, f"r{i}", 0.01, ttl_s=60) is None
        assert reserve(ledger.engine, key.id, "r5", 0.01, ttl_s=60) is not None
        ledger.record(row(0, request_id="r0", api_key_id=key.id, cost_usd=0.002))
        ledger.close()  # the row is written
        assert reserved_usd(ledger.engine, key.id) == pytest.approx(0.04)
    with open_ledger(ledger_url) as reopened:
        assert reopened.spent_usd(key.id) == pytest.approx(0.002)
        assert reserve(reopened.engine, key.id, "r6", 0.008, ttl_s=60) is None  # 0.002 + 0.04 + 0.008 fits
        assert reserve(reopened.engine, key.id, "r7", 0.001, ttl_s=60) is not None


def test_reservations_of_a_dead_process_expire(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, _ = ledger.create_key("k", spend_limit_usd=0.02)
        assert reserve(ledger.engine, key.id, "crashed-1", 0.01, ttl_s=30) is None
        assert reserve(ledger.engine, key.id, "crashed-2", 0.01, ttl_s=300) is None
        assert reserve(ledger.engine, key.id, "new", 0.01, ttl_s=30) is not None
        assert expire_reservations(ledger.engine) == {}  # nothing is due yet
        assert expire_reservations(ledger.engine, utcnow() + timedelta(seconds=60)) == {key.id: pytest.approx(0.01)}
        assert reserved_usd(ledger.engine, key.id) == pytest.approx(0.01)
        assert reserve(ledger.engine, key.id, "new", 0.01, ttl_s=30) is None
        # a late row for an expired reservation is still charged, and releases nothing twice
        ledger.record(row(1, request_id="crashed-1", api_key_id=key.id, cost_usd=0.004))
        ledger.close()
        assert reserved_usd(ledger.engine, key.id) == pytest.approx(0.02)


@pytest.mark.parametrize("batch_s", [0.0, 0.02])
def test_gateway_spend_overshoot_is_at_most_one_estimate_with_16_concurrent_clients(
        servers, ledger_url: str, batch_s: float) -> None:
    fakes, urls = servers
    reset(fakes)
    fakes["small"].delay_s = 0.3  # every request is in flight together
    with open_ledger(ledger_url) as ledger, gateway_stack(fakes, urls, ledger=ledger, ledger_batch_s=batch_s) as gw:
        estimate = _estimate(gw)
        limit = 5 * estimate
        key, token = ledger.create_key("team", spend_limit_usd=limit)
        costs, errors = _hammer(gw.v1, token, 16)
        assert len(costs) + len(errors) == 16
        assert sum(costs) <= limit + estimate
        assert len(costs) >= 1 and errors  # more than 5 served only if early answers were written first (at their smaller actual cost)
        assert all(e.status_code == 429 for e in errors)
        body = errors[0].body
        assert isinstance(body, dict) and body["code"] == "spend_limit_exceeded"
        assert "spend limit" in body["message"] and "may cost up to" in body["message"]
        # sequential requests afterwards: still never past the limit by more than one estimate
        with openai.OpenAI(base_url=gw.v1, api_key=token, max_retries=0) as c:
            for _ in range(20):
                try:
                    raw = c.chat.completions.with_raw_response.create(model="small", messages=PROMPT, max_tokens=MAX_TOKENS)
                    costs.append(float(raw.headers["x-calibroute-cost-usd"]))
                except openai.RateLimitError:
                    pass
        assert sum(costs) <= limit + estimate
    with open_ledger(ledger_url) as reopened:
        assert reopened.spent_usd(key.id) == pytest.approx(sum(costs))
        assert reserved_usd(reopened.engine, key.id) == pytest.approx(0.0, abs=1e-12)


def test_keys_without_a_limit_reserve_nothing(servers, tmp_path) -> None:
    fakes, urls = servers
    reset(fakes)
    with open_ledger(tmp_path / "l.db") as ledger, gateway_stack(fakes, urls, ledger=ledger) as gw:
        key, token = ledger.create_key("free")
        costs, errors = _hammer(gw.v1, token, 4)
        assert len(costs) == 4 and not errors
        with ledger.engine.connect() as conn:
            from calibroute.ledger import tables

            assert conn.execute(tables.spend_reservations.select()).first() is None


def test_a_ledger_from_before_reservations_is_migrated(tmp_path) -> None:
    """An api_keys table without the new columns (as m001 made it) gains them, keys keep working."""
    from sqlalchemy import create_engine, inspect

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE api_keys (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, "
                             "key_hash VARCHAR(64) NOT NULL UNIQUE, spend_limit_usd FLOAT, spent_usd FLOAT NOT NULL, "
                             "created_at DATETIME NOT NULL, revoked_at DATETIME)")
        conn.exec_driver_sql("INSERT INTO api_keys VALUES ('key_old', 'old', 'h', 1.0, 0.25, '2026-01-01 00:00:00', NULL)")
        conn.exec_driver_sql("CREATE TABLE calibroute_migrations (name VARCHAR(100) PRIMARY KEY, applied_at DATETIME NOT NULL)")
        conn.exec_driver_sql("INSERT INTO calibroute_migrations VALUES ('m001_initial', '2026-01-01 00:00:00')")
    engine.dispose()
    with open_ledger(path) as ledger:
        with ledger.engine.connect() as conn:
            cols = {c["name"] for c in inspect(conn).get_columns("api_keys")}
        assert {"reserved_usd", "rpm_limit", "tpm_limit"} <= cols
        assert reserve(ledger.engine, "key_old", "r1", 0.75, ttl_s=60) is None
        assert reserve(ledger.engine, "key_old", "r2", 0.01, ttl_s=60) is not None


def test_a_ledger_that_cannot_reserve_refuses_with_503_not_500(servers, tmp_path) -> None:
    fakes, urls = servers
    reset(fakes)
    with open_ledger(tmp_path / "l.db") as ledger, gateway_stack(fakes, urls, ledger=ledger) as gw:
        _, token = ledger.create_key("k", spend_limit_usd=1.0)
        with ledger.engine.begin() as conn:  # a broken database: the reservation's INSERT fails
            conn.exec_driver_sql("DROP TABLE spend_reservations")
        with openai.OpenAI(base_url=gw.v1, api_key=token, max_retries=0) as c, pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(model="small", messages=PROMPT, max_tokens=MAX_TOKENS)
        assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "1"
        assert info.value.body["code"] == "ledger_unavailable"  # type: ignore[index]
        assert not fakes["small"].requests  # nothing was served past an unchecked limit
