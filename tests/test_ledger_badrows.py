"""A row the database cannot take never costs its neighbours (issue 12, item 1).

Text is made safe for the database where rows become column values (lone surrogates
replaced, NUL removed, lengths clipped, numbers kept in range); a row the database still
refuses is isolated by writing the batch row by row and quarantined in the journal's
dead-letter file, while every other row of its batch is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy import select
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.ledger import LedgerRow, open_ledger, tables
from calibroute.ledger import store as store_module
from calibroute.ledger.writer import BatchWriter

SURROGATE = "\ud800"


def _stored(url: str) -> dict[str, dict[str, object]]:
    with open_ledger(url) as ledger, ledger.engine.connect() as conn:
        return {r.request_id: dict(r._mapping) for r in conn.execute(select(tables.requests))}


HOSTILE = {
    "prompt": {"prompt": "x" * 7000 + SURROGATE + " tail"},
    "error": {"status": "error", "http_status": 502, "error": f"backend said: bad {SURROGATE} input \x00 here"},
    "model": {"model": f"m{SURROGATE}\x00" + "y" * 300},
    "budget": {"budget": "b" * 500},
    "nan cost": {"cost_usd": math.nan, "latency_ms": math.inf},
    "huge usage": {"prompt_tokens": 10**15, "completion_tokens": -(10**15)},
    "fallback path": {"fallback_path": [f"a{SURROGATE}", "b\x00"]},
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_one_hostile_value_costs_no_row(ledger_url: str, kind: str) -> None:
    with open_ledger(ledger_url, store_prompts=True) as ledger:
        for i in range(10):
            ledger.record(row(i, model="small", cost_usd=0.001))
        ledger.record(row(99, **HOSTILE[kind]))  # type: ignore[arg-type]
        for i in range(10, 20):
            ledger.record(row(i, model="small", cost_usd=0.001))
    stored = _stored(ledger_url)
    assert len(stored) == 21  # the hostile row too, made safe
    bad = stored["req-99"]
    for value in bad.values():
        if isinstance(value, str):
            value.encode("utf-8")  # no lone surrogate left
            assert "\x00" not in value
    if kind == "prompt":
        assert str(bad["prompt"]).endswith("\ufffd tail")
    if kind == "error":
        assert bad["error"] == "backend said: bad \ufffd input  here"
    if kind == "model":
        assert str(bad["model"]).startswith("m\ufffd") and len(str(bad["model"])) == 200
    if kind == "nan cost":
        assert bad["cost_usd"] == 0.0
    if kind == "huge usage":
        assert bad["prompt_tokens"] == 2**31 - 1 and bad["completion_tokens"] == -(2**31)
    if kind == "fallback path":
        assert json.loads(str(bad["fallback_path"])) == [f"a{SURROGATE}", "b\x00"]


def test_a_row_the_database_still_refuses_is_quarantined_alone(ledger_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "safe_text", lambda value, limit=None: value)  # let a bad value through
    journal = tmp_path / "journal"
    with open_ledger(ledger_url, journal=journal) as ledger:
        for i in range(5):
            ledger.record(row(i))
        ledger.record(row(50, error=f"bad {SURROGATE}"))
        for i in range(5, 10):
            ledger.record(row(i))
    assert ledger.quarantined == 1 and ledger.written == 10
    assert set(_stored(ledger_url)) == {f"req-{i}" for i in range(10)}
    (dead,) = [json.loads(line) for line in (journal / "dead-letter.jsonl").read_text().splitlines()]
    assert dead["row"]["request_id"] == "req-50" and dead["row"]["error"] == f"bad {SURROGATE}"
    assert "surrogate" in dead["error"]


def test_bad_row_is_isolated_from_a_batch_without_retries() -> None:
    written: list[str] = []
    alone: list[str] = []

    def flush(batch: list[LedgerRow]) -> None:
        if len(batch) == 1:
            alone.append(batch[0].request_id)
        if any(r.request_id == "req-3" for r in batch):
            raise ValueError("cannot encode this row")
        written.extend(r.request_id for r in batch)

    quarantined: list[str] = []
    writer = BatchWriter(flush, retry_delay_s=0.001,
                         on_quarantine=lambda r, exc: quarantined.append(r.request_id))
    for i in range(6):
        writer.submit(row(i))
    writer.close()
    assert written == ["req-0", "req-1", "req-2", "req-4", "req-5"] and quarantined == ["req-3"]
    assert alone.count("req-3") == 1  # a data error is not retried
    assert writer.written == 5 and writer.quarantined == 1 and writer.dropped == 0
