"""``calibroute dashboard`` as a user runs it: a real process over a seeded SQLite ledger, no gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from dashboard_seed import EXPECTED, SINCE, UNTIL, seed_ledger
from servers import free_port, wait_healthy
from typer.testing import CliRunner

from calibroute.cli import app


def test_dashboard_serves_the_ledger_without_a_gateway(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    seed_ledger(str(ledger))
    port = free_port()
    cmd = [sys.executable, "-c", "from calibroute.cli import main; main()", "dashboard", "--ledger", str(ledger), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, 60, path="/ui")
        page = httpx.get(base + "/ui")
        assert page.status_code == 200 and "calibroute dashboard" in page.text
        summary = httpx.get(base + "/ui/api/summary", params={"since": SINCE, "until": UNTIL}).json()
        assert (summary["requests"], round(summary["cost_usd"], 6)) == (EXPECTED["requests"], EXPECTED["cost_usd"])
        status = httpx.get(base + "/ui/api/status").json()
        assert status["portfolio"]["models"] and status["breakers"] == [] and status["rollup"]["state"] == "done"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_dashboard_refuses_a_network_address_without_a_token(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    seed_ledger(str(ledger))
    result = CliRunner().invoke(app, ["dashboard", "--ledger", str(ledger), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and result.output.strip().startswith("error: --host 0.0.0.0 is not loopback")


def test_dashboard_needs_an_existing_ledger(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--ledger", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and result.output.strip().startswith("error: no ledger at")
