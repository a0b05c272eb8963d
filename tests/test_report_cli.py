"""`calibroute report` and `calibroute keys` driven through the real CLI app."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from test_ledger_db import row
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.ledger import open_ledger

runner = CliRunner(env={"COLUMNS": "120", "CALIBROUTE_LEDGER": None})


@pytest.fixture
def ledger_path(tmp_path: Path) -> str:
    path = str(tmp_path / "ledger.db")
    with open_ledger(path) as ledger:
        ledger.record(row(1, task_class="SIMPLE", model="small", cost_usd=0.5, baseline_cost_usd=2.0))
        ledger.record(row(2, task_class="REASONING", model="big", cost_usd=3.0, baseline_cost_usd=3.0))
    return path


def test_report_json_has_totals_and_groups(ledger_path: str) -> None:
    result = runner.invoke(app, ["report", "--ledger", ledger_path, "--since", "1d", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"]["requests"] == 2
    assert data["total"]["savings_usd"] == pytest.approx(1.5)
    assert {line["group"] for line in data["by"]["class"]} == {"SIMPLE", "REASONING"}
    assert {line["group"] for line in data["by"]["model"]} == {"small", "big"}


def test_report_tables_show_spend_and_savings(ledger_path: str) -> None:
    result = runner.invoke(app, ["report", "--ledger", ledger_path, "--by", "model"])
    assert result.exit_code == 0, result.output
    assert "by model" in result.stdout and "by task class" not in result.stdout
    assert "small" in result.stdout and "$1.5000" in result.stdout and "75.0%" in result.stdout
    assert "saved $1.5000 (30.0%)" in result.stdout


def test_report_on_a_period_without_rows_says_so(ledger_path: str) -> None:
    result = runner.invoke(app, ["report", "--ledger", ledger_path, "--since", "2020-01-01", "--until", "2020-02-01"])
    assert result.exit_code == 0 and "no requests recorded" in result.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "cannot read time 'last week'"),
        (["--by", "route"], "cannot group by 'route'"),
        (["--since", "1d", "--until", "2d"], "empty period"),
    ],
)
def test_bad_report_options_are_one_error_line(ledger_path: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", "--ledger", ledger_path, *args])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize("location", ["{tmp}/missing.db", "postgresql://u:pw@127.0.0.1:{port}/db"])
def test_unreachable_ledger_is_one_error_line(tmp_path: Path, location: str) -> None:
    url = location.format(tmp=tmp_path, port=_closed_port())
    result = runner.invoke(app, ["report", "--ledger", url])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pw@" not in lines[0]


def test_keys_create_list_revoke_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "keys.db")
    created = runner.invoke(app, ["keys", "create", "team-a", "--limit", "2.5", "--ledger", path, "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    with open_ledger(path) as ledger:
        key = ledger.authenticate(info["token"])
    assert key is not None and key.id == info["id"] and key.spend_limit_usd == 2.5

    listed = runner.invoke(app, ["keys", "list", "--ledger", path])
    assert listed.exit_code == 0 and info["id"] in listed.stdout and "active" in listed.stdout
    assert info["token"] not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", info["id"], "--ledger", path])
    assert revoked.exit_code == 0 and f"revoked {info['id']}" in revoked.stdout
    listed = runner.invoke(app, ["keys", "list", "--ledger", path, "--json"])
    assert json.loads(listed.stdout)[0]["revoked_at"] is not None


def test_keys_create_prints_only_the_token_on_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "ops", "--ledger", str(tmp_path / "k.db")])
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("crk-") and len(result.stdout.strip().splitlines()) == 1
    assert "shown only now" in result.stderr


def test_revoking_an_unknown_key_is_one_error_line(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    open_ledger(path).close()
    result = runner.invoke(app, ["keys", "revoke", "key_nope", "--ledger", path])
    assert result.exit_code == 2 and result.stderr.strip() == "error: no API key with id 'key_nope'"
