"""Admin keys: they open the dashboard when API keys are on, ordinary keys get 403 there; both call the API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from fake_backend import gateway_stack, wait_for
from sqlalchemy import text
from test_ledger_db import ledger_url  # noqa: F401  (fixture)
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.ledger import open_ledger
from calibroute.ledger.migrations import migrate_engine
from calibroute.ledger.store import make_engine, resolve_url

PROMPT = [{"role": "user", "content": "what is 2+2?"}]


def ui(url: str, token: str | None) -> httpx.Response:
    return httpx.get(f"{url}/ui/api/summary", headers={"authorization": f"Bearer {token}"} if token else {}, timeout=10)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_admin_key_opens_the_dashboard_and_an_api_key_gets_403(tmp_path: Path, fakes, servers, host: str) -> None:
    with open_ledger(str(tmp_path / "ledger.db")) as ledger:
        api_key, api_token = ledger.create_key("team")
        admin_key, admin_token = ledger.create_key("ops", kind="admin")
        with gateway_stack(fakes, servers[1], ledger=ledger, host=host, ui_token="s3cret") as stack:
            assert ui(stack.url, admin_token).status_code == 200
            assert ui(stack.url, "s3cret").status_code == 200  # --ui-token still opens it
            refused = ui(stack.url, api_token)
            assert refused.status_code == 403
            error = refused.json()["error"]  # the API's error format
            assert (error["type"], error["code"]) == ("invalid_request_error", "forbidden")
            assert "'team'" in error["message"] and "--admin" in error["message"]
            assert ui(stack.url, None).status_code == 401
            assert ui(stack.url, "crk-not-a-key").status_code == 401
            # both kinds call the API, each under its own key
            for token in (api_token, admin_token):
                with openai.OpenAI(base_url=stack.v1, api_key=token, max_retries=0) as client:
                    client.chat.completions.create(model="auto", messages=PROMPT)
            rows = wait_for(lambda: (r := ui(stack.url, admin_token).json()) and r["requests"] == 2 and r)
            keyed = httpx.get(f"{stack.url}/ui/api/spend", params={"by": "key"},
                              headers={"authorization": f"Bearer {admin_token}"}).json()["points"]
        assert rows["requests"] == 2 and {p["group"] for p in keyed} == {api_key.id, admin_key.id}
        ledger.revoke_key(admin_key.id)
        with gateway_stack(fakes, servers[1], ledger=ledger, host=host) as stack:
            assert ui(stack.url, admin_token).status_code == 401  # revoked: no longer opens it


def test_without_keys_a_network_address_stays_closed(tmp_path: Path, fakes, servers) -> None:
    with open_ledger(str(tmp_path / "ledger.db")) as ledger:
        with gateway_stack(fakes, servers[1], ledger=ledger, host="0.0.0.0") as stack:
            r = ui(stack.url, "anything")
        assert r.status_code == 403 and "not loopback" in r.json()["error"]["message"]
        with gateway_stack(fakes, servers[1], ledger=ledger) as stack:  # on loopback, behind a proxy on this machine
            forwarded = httpx.get(f"{stack.url}/ui/api/summary", headers={"x-forwarded-for": "203.0.113.9"})
            assert ui(stack.url, None).status_code == 200
        assert forwarded.status_code == 403 and "203.0.113.9" in forwarded.json()["error"]["message"]


def test_keys_cli_creates_and_lists_admin_keys(tmp_path: Path) -> None:
    path, runner = str(tmp_path / "ledger.db"), CliRunner()
    admin = json.loads(runner.invoke(app, ["keys", "create", "ops", "--admin", "--ledger", path, "--json"]).output)
    same = json.loads(runner.invoke(app, ["keys", "create", "ops2", "--kind", "admin", "--ledger", path, "--json"]).output)
    plain = json.loads(runner.invoke(app, ["keys", "create", "team", "--ledger", path, "--json"]).output)
    assert (admin["kind"], same["kind"], plain["kind"]) == ("admin", "admin", "api")
    listed = json.loads(runner.invoke(app, ["keys", "list", "--ledger", path, "--json"]).output)
    assert {k["name"]: k["kind"] for k in listed} == {"ops": "admin", "ops2": "admin", "team": "api"}
    table = runner.invoke(app, ["keys", "list", "--ledger", path], env={"COLUMNS": "200"}).output
    assert "admin" in table and "kind" in table
    for bad in (["--kind", "root"], ["--admin", "--kind", "api"]):
        result = runner.invoke(app, ["keys", "create", "x", *bad, "--ledger", path])
        assert result.exit_code == 2 and result.output.startswith("error:"), result.output


def test_a_ledger_from_before_key_kinds_is_migrated(ledger_url: str) -> None:  # noqa: F811
    engine = make_engine(resolve_url(ledger_url))
    with open_ledger(ledger_url) as ledger:
        old, token = ledger.create_key("old")
    with engine.begin() as conn:  # back to the schema before m007: no kind column
        conn.execute(text("ALTER TABLE api_keys DROP COLUMN kind"))
        conn.execute(text("DELETE FROM calibroute_migrations WHERE name = 'm007_key_kind'"))
    assert migrate_engine(engine) == ["m007_key_kind"]
    assert migrate_engine(engine) == []
    engine.dispose()
    with open_ledger(ledger_url) as ledger:
        key = ledger.authenticate(token)
        assert key is not None and key.id == old.id and key.kind == "api" and not key.is_admin
        _, admin = ledger.create_key("ops", kind="admin")
        found = ledger.authenticate(admin)
        assert found is not None and found.is_admin
