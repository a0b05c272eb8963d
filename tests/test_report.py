"""Spend reports: sums by class, model and key against hand-computed numbers; periods; time parsing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.errors import InputError
from calibroute.ledger import open_ledger
from calibroute.ledger.report import SpendLine, parse_when, spend_report

UTC = timezone.utc
SINCE = datetime(2026, 11, 5, tzinfo=UTC)
UNTIL = datetime(2026, 11, 12, tzinfo=UTC)
IN_PERIOD = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)


def seed(ledger_url: str) -> str:
    """Five rows in the period, one before it; returns the id of key 'team-a'."""
    with open_ledger(ledger_url) as ledger:
        key, _ = ledger.create_key("team-a")
        ledger.record(row(1, task_class="SIMPLE", model="small", prompt_tokens=10, completion_tokens=20,
                          cost_usd=0.10, baseline_cost_usd=1.00, api_key_id=key.id, created_at=IN_PERIOD))
        ledger.record(row(2, task_class="SIMPLE", model="small", status="error", http_status=502,
                          cost_usd=0.20, baseline_cost_usd=1.00, created_at=IN_PERIOD))
        ledger.record(row(3, task_class="REASONING", model="big", prompt_tokens=5, completion_tokens=100,
                          reasoning_tokens=60, cost_usd=1.50, baseline_cost_usd=1.50, api_key_id=key.id,
                          created_at=IN_PERIOD))
        ledger.record(row(4, task_class="REASONING", model="small", cost_usd=0.25, baseline_cost_usd=2.00,
                          created_at=IN_PERIOD))
        ledger.record(row(5, task_class="OPEN_ENDED", status="rejected", http_status=429, created_at=IN_PERIOD))
        ledger.record(row(6, task_class="SIMPLE", model="small", cost_usd=9.0, baseline_cost_usd=9.0,
                          created_at=datetime(2026, 11, 1, tzinfo=UTC)))
        return key.id


def by_group(lines: list[SpendLine]) -> dict[str, SpendLine]:
    return {line.group: line for line in lines}


def test_spend_and_savings_by_class_match_hand_computed_sums(ledger_url: str) -> None:
    seed(ledger_url)
    with open_ledger(ledger_url) as ledger:
        rep = spend_report(ledger.engine, since=SINCE, until=UNTIL)
    classes = by_group(rep.groups["class"])
    assert set(classes) == {"SIMPLE", "REASONING", "OPEN_ENDED"}
    simple = classes["SIMPLE"]
    assert (simple.requests, simple.errors) == (2, 1)
    assert simple.cost_usd == pytest.approx(0.30) and simple.baseline_cost_usd == pytest.approx(2.00)
    assert simple.savings_usd == pytest.approx(1.70) and simple.savings_pct == pytest.approx(85.0)
    reasoning = classes["REASONING"]
    assert reasoning.savings_usd == pytest.approx(1.75) and reasoning.savings_pct == pytest.approx(50.0)
    assert reasoning.reasoning_tokens == 60 and reasoning.completion_tokens == 100
    assert classes["OPEN_ENDED"].savings_pct is None  # no baseline spend: no percentage
    total = rep.total
    assert (total.requests, total.errors, total.prompt_tokens) == (5, 2, 15)
    assert total.cost_usd == pytest.approx(2.05) and total.savings_usd == pytest.approx(3.45)
    assert [line.group for line in rep.groups["class"]] == ["REASONING", "SIMPLE", "OPEN_ENDED"]  # by cost


def test_spend_by_model_and_by_key(ledger_url: str) -> None:
    key_id = seed(ledger_url)
    with open_ledger(ledger_url) as ledger:
        rep = spend_report(ledger.engine, since=SINCE, until=UNTIL, by=["model", "key"])
    models = by_group(rep.groups["model"])
    assert models["small"].requests == 3 and models["small"].cost_usd == pytest.approx(0.55)
    assert models["small"].baseline_cost_usd == pytest.approx(4.00)
    assert models["big"].savings_usd == pytest.approx(0.0)
    assert models["(none)"].requests == 1
    keys = by_group(rep.groups["key"])
    assert keys[key_id].label == "team-a" and keys[key_id].cost_usd == pytest.approx(1.60)
    assert keys["(none)"].requests == 3


def test_period_is_half_open_since_included_until_excluded(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        ledger.record(row(1, cost_usd=1.0, created_at=SINCE))
        ledger.record(row(2, cost_usd=2.0, created_at=UNTIL - timedelta(microseconds=1)))
        ledger.record(row(3, cost_usd=4.0, created_at=UNTIL))
        ledger.record(row(4, cost_usd=8.0, created_at=SINCE - timedelta(seconds=1)))
    with open_ledger(ledger_url) as ledger:
        assert spend_report(ledger.engine, since=SINCE, until=UNTIL).total.cost_usd == pytest.approx(3.0)
        assert spend_report(ledger.engine, until=UNTIL).total.cost_usd == pytest.approx(11.0)
        local = SINCE.astimezone(timezone(timedelta(hours=-5)))  # the same instant in another zone
        assert spend_report(ledger.engine, since=local, until=UNTIL).total.cost_usd == pytest.approx(3.0)


def test_empty_ledger_gives_zero_totals(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        rep = spend_report(ledger.engine)
    assert rep.total.requests == 0 and rep.total.cost_usd == 0.0 and rep.groups["class"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", datetime(2026, 11, 22, 12, tzinfo=UTC)),
        ("12h", datetime(2026, 11, 29, 0, tzinfo=UTC)),
        ("30m", datetime(2026, 11, 29, 11, 30, tzinfo=UTC)),
        ("2w", datetime(2026, 11, 15, 12, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00+02:00", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_relative_and_absolute_times(text: str, expected: datetime) -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert parse_when(text, now=now) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", "", "-3d", "2026-13-01"])
def test_parse_when_rejects_unreadable_times(text: str) -> None:
    with pytest.raises(InputError, match="cannot read time"):
        parse_when(text)


@pytest.mark.parametrize(("kwargs", "message"), [({"since": UNTIL, "until": SINCE}, "empty period"),
                                                 ({"by": ["route"]}, "cannot group by 'route'")])
def test_bad_report_arguments_are_input_errors(tmp_path: object, kwargs: dict[str, object], message: str) -> None:
    with open_ledger(f"{tmp_path}/l.db") as ledger, pytest.raises(InputError, match=message):
        spend_report(ledger.engine, **kwargs)  # type: ignore[arg-type]
