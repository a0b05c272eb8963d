"""The dashboard's JSON endpoints against a seeded SQLite ledger behind a real gateway; access rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from dashboard_seed import EXPECTED, SINCE, UNTIL, seed_ledger
from fake_backend import client_for, gateway_stack, wait_for
from sqlalchemy import func, select

from calibroute.ledger import open_ledger, tables

WINDOW = {"since": SINCE, "until": UNTIL}


@pytest.fixture
def seeded(tmp_path: Path, fakes, servers) -> Iterator[tuple[str, object]]:
    path = str(tmp_path / "ledger.db")
    seed_ledger(path)
    ledger = open_ledger(path)
    try:
        with gateway_stack(fakes, servers[1], ledger=ledger) as stack:
            yield stack.url, ledger
    finally:
        ledger.close()


def get(base: str, path: str, **params: object) -> dict:
    r = httpx.get(f"{base}{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_summary_matches_the_ledger(seeded) -> None:
    base, ledger = seeded
    s = get(base, "/ui/api/summary", **WINDOW)
    for key, value in EXPECTED.items():
        assert s[key] == pytest.approx(value), key
    assert s["fallback_share"] == pytest.approx(0.2) and s["escalation_share"] == pytest.approx(0.2)
    assert (s["prompt_tokens"], s["completion_tokens"], s["reasoning_tokens"]) == (15, 120, 60)
    t = tables.requests
    with ledger.engine.connect() as conn:  # the same numbers straight from the table
        n, cost = conn.execute(select(func.count(), func.sum(t.c.cost_usd)).where(
            t.c.created_at >= tables.as_utc(datetime.fromisoformat(SINCE)),
            t.c.created_at < tables.as_utc(datetime.fromisoformat(UNTIL)))).one()
    assert (s["requests"], s["cost_usd"]) == (n, pytest.approx(cost))


def test_spend_series_by_class_per_hour(seeded) -> None:
    base, _ = seeded
    points = get(base, "/ui/api/spend", by="class", bucket="hour", **WINDOW)["points"]
    got = {(p["bucket"], p["group"]): (p["requests"], round(p["cost_usd"], 6), round(p["savings_usd"], 6)) for p in points}
    assert got == {
        ("2026-11-10T09:00:00Z", "SIMPLE"): (2, 0.3, 1.7),
        ("2026-11-10T10:00:00Z", "OPEN_ENDED"): (1, 0.0, 0.0),
        ("2026-11-10T10:00:00Z", "REASONING"): (2, 1.75, 1.75),
    }
    daily = get(base, "/ui/api/spend", bucket="day", **WINDOW)["points"]
    assert [(p["bucket"], p["requests"], round(p["cost_usd"], 6)) for p in daily] == [("2026-11-10T00:00:00Z", 5, 2.05)]
    keyed = get(base, "/ui/api/spend", by="key", **WINDOW)["points"]
    assert {p["group"] for p in keyed} == {"none"}


def test_flows_latency_errors(seeded) -> None:
    base, _ = seeded
    flows = get(base, "/ui/api/flows", **WINDOW)
    assert flows["class_mix"] == {"OPEN_ENDED": 1, "REASONING": 2, "SIMPLE": 2}
    assert {(f["task_class"], f["model"]): f["requests"] for f in flows["flows"]} == {
        ("OPEN_ENDED", "small-chat"): 1, ("REASONING", "big-thinker"): 1, ("REASONING", "mid-reasoner"): 1,
        ("SIMPLE", "small-chat"): 2}
    lat = {m["model"]: (m["p50_ms"], m["p95_ms"]) for m in get(base, "/ui/api/latency", **WINDOW)["models"]}
    assert lat == {"big-thinker": (2000.0, 2000.0), "mid-reasoner": (900.0, 900.0), "small-chat": (100.0, 300.0)}
    errors = get(base, "/ui/api/errors", **WINDOW)["points"]
    assert errors == [{"bucket": "2026-11-10T10:00:00Z", "kind": "error/502", "requests": 1}]


def test_recent_requests_filtered_with_reason(seeded) -> None:
    base, _ = seeded
    rows = get(base, "/ui/api/requests", limit=3)["requests"]
    assert [r["request_id"] for r in rows] == ["seed-6", "seed-5", "seed-4"]
    (only,) = get(base, "/ui/api/requests", model="big-thinker")["requests"]
    assert (only["request_id"], only["route_rule"], only["reasoning_tokens"], only["budget"]) == (
        "seed-3", "escalated", 60, "effort=high")
    assert only["confidence"] == pytest.approx(0.71) and "escalated" in only["reason"]
    assert only["fallback_path"] == ["mid-reasoner", "big-thinker"] and only["prompt"] is None
    assert [r["request_id"] for r in get(base, "/ui/api/requests", status="error")["requests"]] == ["seed-5"]


def test_bad_parameters_are_400(seeded) -> None:
    base, _ = seeded
    for path, params in [("/ui/api/spend", {"by": "colour"}), ("/ui/api/summary", {"bucket": "week"}),
                         ("/ui/api/requests", {"limit": "100000"}), ("/ui/api/summary", {"since": "yesterday"})]:
        r = httpx.get(f"{base}{path}", params=params)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["message"]


def test_status_shows_portfolio_and_breakers(seeded) -> None:
    base, _ = seeded
    status = get(base, "/ui/api/status")
    names = [m["name"] for m in status["portfolio"]["models"]]
    assert status["portfolio"]["largest_model"] in names
    assert [b["model"] for b in status["breakers"]] == names
    assert {b["state"] for b in status["breakers"]} == {"closed"}


def test_gateway_records_the_decisions_confidence_and_reason(tmp_path: Path, fakes, servers) -> None:
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    try:
        with gateway_stack(fakes, servers[1], ledger=ledger) as stack, client_for(stack) as client:
            client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "what is 2+2?"}])
            rows = wait_for(lambda: get(stack.url, "/ui/api/requests")["requests"])
        (row,) = rows
        assert row["confidence"] is not None and 0 < row["confidence"] <= 1
        assert row["reason"] and row["task_class"] and row["model"]
    finally:
        ledger.close()


@pytest.mark.parametrize("settings, headers, status", [
    ({"ui_token": "s3cret"}, {}, 401),
    ({"ui_token": "s3cret"}, {"authorization": "Bearer wrong"}, 401),
    ({"ui_token": "s3cret"}, {"authorization": "Bearer s3cret"}, 200),
    ({"host": "0.0.0.0"}, {}, 403),
    ({"host": "0.0.0.0", "ui_token": "s3cret"}, {"authorization": "Bearer s3cret"}, 200),
    ({"host": "::1"}, {}, 200),
])
def test_access(tmp_path: Path, fakes, servers, settings, headers, status) -> None:
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    try:
        with gateway_stack(fakes, servers[1], ledger=ledger, **settings) as stack:
            assert httpx.get(f"{stack.url}/ui/api/summary", headers=headers).status_code == status
    finally:
        ledger.close()


def test_keys_enabled_needs_a_ui_token(tmp_path: Path, fakes, servers) -> None:
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    try:
        _, api_token = ledger.create_key("team")
        with gateway_stack(fakes, servers[1], ledger=ledger) as stack:
            r = httpx.get(f"{stack.url}/ui/api/summary", headers={"authorization": f"Bearer {api_token}"})
            assert r.status_code == 403 and "--ui-token" in r.json()["error"]["message"]
    finally:
        ledger.close()
