"""The crash journal: rows a killed process had accepted are written at the next start,
exactly once; a clean close leaves nothing behind (issue 12, item 4; docs/ledger.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.ledger import open_ledger, tables
from calibroute.ledger import sink as sink_module

# A process that accepts rows and is then killed: ``hold`` keeps the writer from committing.
CHILD = """
import sys, threading, time
from calibroute.ledger import LedgerRow, open_ledger
from calibroute.ledger import sink
url, journal, n, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "hold"
if hold:
    sink.insert_rows = lambda *a, **k: threading.Event().wait()
ledger = open_ledger(url, journal=journal, key_refresh_s=60)
for i in range(n):
    ledger.record(LedgerRow(request_id=f"req-{i}", status="ok", http_status=200, error="x\\ud800" if i == 3 else None))
while not hold and ledger.written < n:
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(60)
"""


def _killed_child(url: str, journal: Path, n: int, *, hold: bool) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(journal), str(n), "hold" if hold else "commit"],
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _count(url: str) -> tuple[int, int]:
    with open_ledger(url) as ledger, ledger.engine.connect() as conn:
        t = tables.requests
        n, distinct = conn.execute(select(func.count(), func.count(func.distinct(t.c.request_id)))).one()
    return int(n), int(distinct)


@pytest.mark.parametrize("hold", [True, False], ids=["uncommitted", "committed"])
def test_rows_of_a_killed_process_are_written_once_at_the_next_start(ledger_url: str, tmp_path: Path, hold: bool) -> None:
    journal = tmp_path / "journal"
    _killed_child(ledger_url, journal, 300, hold=hold)
    assert _count(ledger_url) == ((0, 0) if hold else (300, 300))
    dead = set(journal.glob("rows-*.jsonl"))
    assert len(dead) == 1  # the killed process's segment
    with open_ledger(ledger_url, journal=journal) as ledger:
        assert ledger.replayed == 300
        assert not dead & set(journal.glob("rows-*.jsonl"))  # replayed, then deleted
    assert _count(ledger_url) == (300, 300)  # every row once: replay skips what is stored
    assert list(journal.glob("rows-*.jsonl")) == []
    with open_ledger(ledger_url, journal=journal) as again:
        assert again.replayed == 0


def test_clean_close_leaves_no_journal_and_rotation_frees_committed_segments(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with open_ledger(tmp_path / "l.db", journal=journal) as ledger:
        assert ledger.journal is not None
        ledger.journal.segment_bytes = 2_000  # ~10 rows per segment
        for i in range(200):
            ledger.record(row(i))
        _wait_for(lambda: ledger.written == 200)
        assert len(list(journal.glob("rows-*.jsonl"))) <= 2  # the current segment, maybe one not yet freed
        ledger.record(row(999))
        _wait_for(lambda: ledger.written == 201)
        assert len(list(journal.glob("rows-*.jsonl"))) == 1
    assert list(journal.glob("rows-*.jsonl")) == []
    assert _count(str(tmp_path / "l.db")) == (201, 201)


def test_rows_given_up_while_the_database_is_down_are_kept_and_replayed(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    journal, url = tmp_path / "journal", str(tmp_path / "l.db")
    real = sink_module.insert_rows

    def down(*args: object, **kwargs: object) -> dict[str, float]:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(sink_module, "insert_rows", down)
    ledger = open_ledger(url, journal=journal)
    ledger._writer._retry_delay_s = 0.001  # noqa: SLF001
    for i in range(20):
        ledger.record(row(i))
    ledger.close()
    assert ledger.dropped == 20 and ledger.quarantined == 0
    assert sum(len(p.read_text().splitlines()) for p in journal.glob("rows-*.jsonl")) == 20
    monkeypatch.setattr(sink_module, "insert_rows", real)
    with open_ledger(url, journal=journal) as back:
        assert back.replayed == 20
    assert _count(url) == (20, 20)


def test_torn_last_line_goes_to_the_dead_letter_file_and_the_rest_is_replayed(tmp_path: Path) -> None:
    journal, url = tmp_path / "journal", str(tmp_path / "l.db")
    journal.mkdir()
    lines = [json.dumps({"request_id": f"req-{i}", "status": "ok", "http_status": 200}) for i in range(3)]
    (journal / "rows-1-dead-000001.jsonl").write_text("\n".join(lines) + '\n{"request_id": "req-3", "sta')
    with open_ledger(url, journal=journal) as ledger:
        assert ledger.replayed == 3
    assert _count(url) == (3, 3)
    (dead,) = [json.loads(x) for x in (journal / "dead-letter.jsonl").read_text().splitlines()]
    assert dead["line"].startswith('{"request_id": "req-3"') and "unreadable" in dead["error"]


def test_a_live_process_segment_is_never_replayed_by_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal, url = tmp_path / "journal", str(tmp_path / "l.db")
    first = open_ledger(url, journal=journal)
    try:
        assert first.journal is not None
        accepted = row(1)
        first.accept(accepted)  # journaled, not yet handed to the writer
        with open_ledger(url, journal=journal) as second:  # e.g. another worker starting
            assert second.replayed == 0
        assert _count(url) == (0, 0)
        first.enqueue([accepted])
    finally:
        first.close()
    assert _count(url) == (1, 1)
    assert list(journal.glob("rows-*.jsonl")) == []


def test_rows_given_up_are_written_once_the_database_is_back_without_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal, url = tmp_path / "journal", str(tmp_path / "l.db")
    real, down = sink_module.insert_rows, [True]

    def flaky(*args: object, **kwargs: object) -> dict[str, float]:
        if down[0]:
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sink_module, "insert_rows", flaky)
    monkeypatch.setattr(sink_module, "RETRY_KEPT_S", 0.05)
    with open_ledger(url, journal=journal) as ledger:
        ledger._writer._retry_delay_s = 0.001  # noqa: SLF001
        ledger._writer._tick_s = 0.02  # noqa: SLF001
        for i in range(20):
            ledger.record(row(i))
        _wait_for(lambda: ledger.dropped == 20)
        down[0] = False  # the database is back
        ledger.record(row(20))
        assert ledger.journal is not None
        _wait_for(lambda: ledger.journal.kept == [])  # type: ignore[union-attr]
        assert _count(url) == (21, 21)
        assert len(list(journal.glob("rows-*.jsonl"))) == 1  # only the current segment


def test_every_row_field_is_journaled_and_round_trips() -> None:
    import dataclasses

    from calibroute.ledger.base import LedgerRow
    from calibroute.ledger.journal import JOURNAL_FIELDS, decode_row, encode_line

    assert sorted(JOURNAL_FIELDS) == sorted(f.name for f in dataclasses.fields(LedgerRow))  # a new field: append it
    full = row(7, prompt="p \ud800", error="e", model="m", fallback_path=["a", "b"], cost_usd=0.5, stream=True)
    assert decode_row(json.loads(encode_line(full, True))) == full
    assert decode_row(json.loads(encode_line(full, False))).prompt is None
