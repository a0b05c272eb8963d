"""Client API keys: hashed at rest, authenticated from a cache, spend counted as recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from test_ledger_db import ledger_url, row  # noqa: F401  (fixture)

from calibroute.errors import InputError
from calibroute.ledger import open_ledger, tables


def test_plaintext_token_never_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with open_ledger(path) as ledger:
        _, token = ledger.create_key("team-a", 5.0)
        assert ledger.authenticate(token) is not None
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.db"))
    secret = token.removeprefix("crk-").encode()
    assert secret not in raw and secret[:16] not in raw
    assert b"team-a" in raw  # the file was really written and readable


def test_stored_hash_is_not_the_token(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, token = ledger.create_key("k")
        with ledger.engine.connect() as conn:
            stored = conn.execute(select(tables.api_keys)).one()._mapping
    assert all(token not in str(v) for v in stored.values())
    assert stored["id"] == key.id and len(stored["key_hash"]) == 64


def test_authenticate_accepts_the_token_and_rejects_others(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, token = ledger.create_key("k", 2.5)
        found = ledger.authenticate(token)
        assert found is not None and found.id == key.id and found.spend_limit_usd == 2.5
        assert ledger.authenticate(token + "x") is None
        assert ledger.authenticate("") is None


def test_revoked_key_no_longer_authenticates_but_keys_stay_enabled(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        assert not ledger.keys_enabled()
        key, token = ledger.create_key("k")
        assert ledger.keys_enabled()
        ledger.revoke_key(key.id)
        assert ledger.authenticate(token) is None
        assert ledger.keys_enabled()  # revoking the last key must not open the gateway to everyone


def test_key_created_by_another_process_is_seen_after_refresh(ledger_url: str) -> None:
    with open_ledger(ledger_url, key_refresh_s=0) as gateway, open_ledger(ledger_url) as cli:
        assert not gateway.keys_enabled()
        key, token = cli.create_key("from-cli")
        found = gateway.authenticate(token)
        assert found is not None and found.id == key.id
        cli.revoke_key(key.id)
        assert gateway.authenticate(token) is None


def test_spend_counts_at_record_time_and_survives_reopen(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        key, token = ledger.create_key("k", spend_limit_usd=1.0)
        other, _ = ledger.create_key("other")
        for i, cost in enumerate([0.25, 0.5, 0.125]):
            ledger.record(row(i, api_key_id=key.id, cost_usd=cost))
        ledger.record(row(9, api_key_id=other.id, cost_usd=3.0))
        ledger.record(row(10, cost_usd=7.0))  # no key: counts for nobody
        assert ledger.spent_usd(key.id) == pytest.approx(0.875)  # before the writer caught up
        found = ledger.authenticate(token)
        assert found is not None and not found.over_limit
        ledger.record(row(3, api_key_id=key.id, cost_usd=0.125))
        found = ledger.authenticate(token)
        assert found is not None and found.over_limit and found.spent_usd == pytest.approx(1.0)
    with open_ledger(ledger_url) as reopened:
        assert reopened.spent_usd(key.id) == pytest.approx(1.0)
        assert reopened.spent_usd(other.id) == pytest.approx(3.0)
        assert reopened.spent_usd("key_unknown") == 0.0


def test_spend_is_not_counted_twice_when_keys_reload_during_writes(ledger_url: str) -> None:
    with open_ledger(ledger_url, key_refresh_s=0) as ledger:
        key, token = ledger.create_key("k")
        seen = []
        for i in range(300):
            ledger.record(row(i, api_key_id=key.id, cost_usd=0.01))
            found = ledger.authenticate(token)  # reloads from the database while batches commit
            assert found is not None
            seen.append(round(found.spent_usd - 0.01 * (i + 1), 9))
    assert seen == [0.0] * 300


def test_list_keys_shows_every_key_with_its_spend(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        a, _ = ledger.create_key("a", 1.0)
        b, _ = ledger.create_key("b")
        ledger.record(row(1, api_key_id=b.id, cost_usd=0.5))
        ledger.revoke_key(a.id)
        listed = {k.id: k for k in ledger.list_keys()}
    assert set(listed) == {a.id, b.id}
    assert listed[a.id].revoked_at is not None and listed[b.id].revoked_at is None
    assert listed[b.id].spent_usd == pytest.approx(0.5)


@pytest.mark.parametrize(("name", "limit", "message"), [("", None, "name"), ("k", -1.0, "limit"), ("k", float("nan"), "limit")])
def test_bad_key_settings_are_input_errors(tmp_path: Path, name: str, limit: float | None, message: str) -> None:
    with open_ledger(tmp_path / "l.db") as ledger, pytest.raises(InputError, match=message):
        ledger.create_key(name, limit)


def test_revoking_an_unknown_key_says_so(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger, pytest.raises(InputError, match="no API key"):
        ledger.revoke_key("key_nope")
