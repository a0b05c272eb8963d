"""The first rollup runs in the background: the gateway answers at once, the dashboard reads raw rows
(or says "rollup in progress") until it is done; on PostgreSQL one process rolls up at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from dashboard_seed import EXPECTED, SEED_ROWS, SINCE, UNTIL, seed_ledger
from fake_backend import gateway_stack, wait_for
from sqlalchemy import func, select, text
from test_ledger_db import ledger_url  # noqa: F401  (fixture)

from calibroute.ledger import open_ledger, rollup, rollup_catchup, tables
from calibroute.ledger.rollup_catchup import CatchUp, RollupInProgress

WINDOW = {"since": SINCE, "until": UNTIL}


def rolled_up(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(tables.requests_hourly.c.requests), 0))).scalar())


def test_gateway_starts_before_the_first_rollup_and_the_dashboard_says_so(
        tmp_path: Path, fakes, servers, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "ledger.db")
    seed_ledger(path)
    started, release = threading.Event(), threading.Event()
    step = rollup._step

    def held_step(engine):  # the catch-up's chunks wait until the test lets them go
        started.set()
        assert release.wait(30)
        return step(engine)

    monkeypatch.setattr(rollup, "_step", held_step)
    monkeypatch.setattr(rollup, "CHUNK", 2)
    monkeypatch.setattr(rollup_catchup, "LIVE_LIMIT", 2)
    with open_ledger(path) as ledger, gateway_stack(fakes, servers[1], ledger=ledger) as stack:
        def get(endpoint: str, **params: str) -> httpx.Response:
            return httpx.get(f"{stack.url}/ui/api/{endpoint}", params=params, timeout=10)

        wait_for(started.is_set)  # the gateway is up and answering while the rollup has not done a chunk
        busy = get("summary", **WINDOW)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert busy.json()["error"]["code"] == "rollup_in_progress" and "6 to go" in busy.json()["error"]["message"]
        assert len(get("requests").json()["requests"]) == len(SEED_ROWS)  # the last requests are shown meanwhile
        assert get("status").json()["rollup"]["state"] == "running"

        monkeypatch.setattr(rollup_catchup, "LIVE_LIMIT", 100)  # few rows behind: totals from the raw rows
        raw = get("summary", **WINDOW).json()
        assert (raw["requests"], raw["cost_usd"]) == (EXPECTED["requests"], pytest.approx(EXPECTED["cost_usd"]))
        assert rolled_up(ledger.engine) == 0

        release.set()
        wait_for(lambda: get("status").json()["rollup"]["state"] == "done")
        assert rolled_up(ledger.engine) == len(SEED_ROWS)
        done = get("summary", **WINDOW).json()
        assert {k: done[k] for k in raw if k != "window"} == {k: raw[k] for k in raw if k != "window"}


def test_catch_up_rolls_up_everything(ledger_url: str) -> None:  # noqa: F811
    seed_ledger(ledger_url)
    with open_ledger(ledger_url) as ledger:
        catch_up = CatchUp(ledger.engine).start()
        wait_for(lambda: catch_up.finished)
        assert catch_up.state == "done" and catch_up.gate() is True
        assert catch_up.progress() == {"state": "done", "rolled_up_to_id": len(SEED_ROWS), "target_id": len(SEED_ROWS)}
        assert rolled_up(ledger.engine) == len(SEED_ROWS)


@pytest.mark.postgres
def test_on_postgresql_one_process_rolls_up_and_the_others_wait(ledger_url: str,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if not ledger_url.startswith("postgresql"):
        pytest.skip("the catch-up lock is PostgreSQL's")
    monkeypatch.setattr(rollup_catchup, "WAIT_S", 0.05)
    monkeypatch.setattr(rollup_catchup, "LIVE_LIMIT", 2)
    seed_ledger(ledger_url)
    with open_ledger(ledger_url) as ledger:
        with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:  # another process
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": rollup_catchup.CATCH_UP_LOCK_KEY})
            catch_up = CatchUp(ledger.engine).start()
            wait_for(lambda: catch_up.state == "waiting")
            with pytest.raises(RollupInProgress):
                catch_up.gate()
            assert rolled_up(ledger.engine) == 0
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": rollup_catchup.CATCH_UP_LOCK_KEY})
        wait_for(lambda: catch_up.finished)
        assert catch_up.state == "done" and rolled_up(ledger.engine) == len(SEED_ROWS)
