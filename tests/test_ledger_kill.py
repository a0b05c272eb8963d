"""kill -9 under load loses no answered request's row (issue 12, item 4), bounded to a few seconds.

A real ``calibroute serve`` (stub estimators, fake backends, SQLite ledger with its journal)
answers several client threads; then the database is stalled (another connection holds
SQLite's write lock) while 20 more are answered, so the kill finds answered
rows not yet committed;
the ledger is opened again as the gateway does when it starts (bench/ledger_kill.py restarts
the gateway itself) and every answered ``x-request-id`` must be in the ledger,
once. The full-speed measurement is bench/ledger_kill.py (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
from pathlib import Path

from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml

from calibroute.ledger import open_ledger

TESTS = Path(__file__).parent
ROOT = TESTS.parent
_spec = importlib.util.spec_from_file_location("ledger_kill", ROOT / "bench" / "ledger_kill.py")
assert _spec is not None and _spec.loader is not None
ledger_kill = sys.modules["ledger_kill"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ledger_kill)

LAUNCH = (  # the real CLI, with the deterministic stub estimators registered through the production registry
    "import sys; sys.path.insert(0, {tests!r}); from calibroute import classify; "
    "classify.CLASSIFIERS['default'] = 'stubs:KeywordClassifier'; classify.DIFFICULTY['default'] = 'stubs:LengthDifficulty'; "
    "from calibroute.cli import main; sys.argv = ['calibroute', 'serve'] + sys.argv[1:]; main()"
)


def test_sigkill_under_load_loses_no_answered_row(servers, tmp_path):
    _, urls = servers
    config = tmp_path / "portfolio.yaml"
    config.write_text(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
    db = tmp_path / "ledger.db"

    def serve(port: int) -> list[str]:
        return [sys.executable, "-c", LAUNCH.format(tests=str(TESTS)), "--config", str(config), "--port", str(port),
                "--ledger", str(db), "--log-level", "warning"]

    stall = sqlite3.connect(db, isolation_level=None, timeout=10)

    def stall_the_database(progress) -> None:
        stall.execute("BEGIN EXCLUSIVE")  # the gateway's writer now waits (busy timeout)
        answered, deadline = progress(), time.monotonic() + 120
        while progress() < answered + 20 and time.monotonic() < deadline:  # answered, not yet committed
            time.sleep(0.01)

    def reopen() -> int:  # what the gateway does first when it starts again
        with open_ledger(db, journal=True) as ledger:
            return ledger.replayed

    def release() -> None:
        if stall.in_transaction:
            stall.execute("ROLLBACK")

    try:
        run = ledger_kill.measure(serve, ledger_kill.sqlite_ids(db), duration_s=0.5, threads=4, model="small",
                                  min_answered=20, before_kill=stall_the_database, after_kill=release, reopen=reopen)
    finally:
        release()
        stall.close()
    assert run.lost == 0, run
    assert run.replayed >= 1  # the rows answered while the database was stalled came from the journal
    ids = [r[0] for r in sqlite3.connect(db).execute("select request_id from requests")]
    assert len(ids) == len(set(ids)) == run.rows_total
