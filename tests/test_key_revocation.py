"""Key changes reach every gateway sharing a PostgreSQL ledger within a second (LISTEN/NOTIFY)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from fake_backend import gateway_stack, reset
from test_ledger_db import _pg_schema_url

from calibroute.ledger import open_ledger

BODY = {"model": "small", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url()


def _status(url: str, token: str) -> int:
    return httpx.post(url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}, timeout=10).status_code


@pytest.mark.postgres
def test_revocation_reaches_two_gateways_within_one_second(servers, pg_url: str) -> None:
    fakes, urls = servers
    reset(fakes)
    with ExitStack() as stack:
        admin = stack.enter_context(open_ledger(pg_url))
        key, token = admin.keys.create("team")
        gws = [stack.enter_context(gateway_stack(fakes, urls, ledger=stack.enter_context(open_ledger(pg_url, key_refresh_s=30))))
               for _ in range(2)]
        assert [_status(g.url, token) for g in gws] == [200, 200]
        assert all(g.app.state.key_listener.listening.wait(10) for g in gws)
        admin.revoke_key(key.id)
        revoked_at = time.monotonic()
        pending = {g.url for g in gws}
        while pending and time.monotonic() - revoked_at < 1.0:
            pending = {u for u in pending if _status(u, token) != 401}
            time.sleep(0.02)
        assert not pending, f"still accepted after 1 s by {pending}"
