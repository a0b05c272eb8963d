"""Per-key requests and tokens per minute: 429 with Retry-After, per process or shared via Redis."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fake_backend import dead_url, gateway_stack, reset
from typer.testing import CliRunner

from calibroute.cli import app
from calibroute.gateway.ratelimit import LocalBuckets
from calibroute.ledger import open_ledger

REDIS_ENV = "CALIBROUTE_TEST_REDIS_URL"
BODY = {"model": "small", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}
runner = CliRunner()


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set (.ci/setup.d/redis.sh starts redis-server)")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} unreachable: {exc}")
    finally:
        client.close()
    yield url


def _post(url: str, token: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}, timeout=60)


def _refills(started: float, rpm: int) -> int:
    """Requests a bucket of ``rpm`` per minute regains while a slow (loaded) machine sends."""
    return int((time.monotonic() - started) * rpm / 60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gcra_bursts_to_the_limit_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert [buckets.admit("k", 3, 0, 0)[0] for _ in range(3)] == [True] * 3
    admitted, wait, which = buckets.admit("k", 3, 0, 0)
    assert not admitted and which == "requests" and wait == pytest.approx(20.0)  # one request per 20 s refills
    clock.now += 20.0
    assert buckets.admit("k", 3, 0, 0)[0]
    assert not buckets.admit("k", 3, 0, 0)[0]
    assert buckets.admit("other", 3, 0, 0)[0]  # buckets are per key


def test_tokens_are_charged_after_the_answer_and_put_the_key_in_debt() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert buckets.admit("k", 0, 600, 100)[0]  # 100 of 600 tokens charged up front
    buckets.charge("k", 600, 900)  # the answer used 1,000 in all: 400 tokens in debt
    admitted, wait, which = buckets.admit("k", 0, 600, 10)
    assert not admitted and which == "tokens" and wait == pytest.approx(41.0)  # (400 + 10) tokens at 10/s
    clock.now += 41.0
    assert buckets.admit("k", 0, 600, 10)[0]
    assert buckets.admit("big", 0, 600, 5000)[0]  # larger than a minute's budget: admitted on a full bucket


def test_gateway_answers_429_with_retry_after_per_key(servers, tmp_path: Path) -> None:
    fakes, urls = servers
    reset(fakes)
    with open_ledger(tmp_path / "l.db") as ledger, gateway_stack(fakes, urls, ledger=ledger) as gw:
        _, limited = ledger.keys.create("limited", rpm_limit=3)
        _, free = ledger.keys.create("free")
        assert [_post(gw.url, limited).status_code for _ in range(3)] == [200] * 3
        refused = _post(gw.url, limited)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert "3 requests per minute" in error["message"]
        assert all(_post(gw.url, free).status_code == 200 for _ in range(5))


def test_gateway_tokens_per_minute_count_the_answer(servers, tmp_path: Path) -> None:
    fakes, urls = servers
    reset(fakes)
    fakes["small"].reply = " ".join(["word"] * 40)  # 40 completion tokens per answer
    with open_ledger(tmp_path / "l.db") as ledger, gateway_stack(fakes, urls, ledger=ledger) as gw:
        _, token = ledger.keys.create("k", tpm_limit=60)
        assert _post(gw.url, token).status_code == 200  # ~42 tokens used
        assert _post(gw.url, token).status_code == 200  # 18 left: the prompt fits, the answer overdraws
        refused = _post(gw.url, token)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        assert int(refused.headers["retry-after"]) >= 10  # the debt of the second answer, at 1 token/s


def _two_gateways(servers, tmp_path: Path, redis: str | None) -> tuple[ExitStack, list[str], str]:
    """Two gateways (two processes' worth of state) over one ledger, as two replicas would be."""
    fakes, urls = servers
    reset(fakes)
    stack = ExitStack()
    path = tmp_path / "shared.db"
    admin = stack.enter_context(open_ledger(path))
    _, token = admin.keys.create("shared-" + uuid.uuid4().hex[:6], rpm_limit=4)
    gws = [stack.enter_context(gateway_stack(fakes, urls, ledger=stack.enter_context(open_ledger(path)), redis_url=redis))
           for _ in range(2)]
    return stack, [g.url for g in gws], token


@pytest.mark.redis
def test_two_processes_share_the_limit_through_redis(servers, tmp_path: Path, redis_url: str) -> None:
    stack, urls, token = _two_gateways(servers, tmp_path, redis_url)
    with stack:
        started = time.monotonic()
        codes = [_post(urls[i % 2], token).status_code for i in range(8)]
        refills = _refills(started, 4)
    assert codes[:4] == [200] * 4
    assert codes.count(200) <= 4 + refills  # one bucket for both processes (8 without Redis)


def test_without_redis_each_process_keeps_its_own_limit(servers, tmp_path: Path) -> None:
    stack, urls, token = _two_gateways(servers, tmp_path, None)
    with stack:
        started = time.monotonic()
        codes = [_post(urls[i % 2], token).status_code for i in range(10)]
        refills = _refills(started, 4)
    assert 8 <= codes.count(200) <= 8 + 2 * refills  # documented: N processes admit up to N times the limit


def test_unreachable_redis_falls_back_to_per_process_limits(servers, tmp_path: Path) -> None:
    fakes, urls = servers
    reset(fakes)
    down = dead_url().replace("http://", "redis://")
    with open_ledger(tmp_path / "l.db") as ledger, gateway_stack(fakes, urls, ledger=ledger, redis_url=down) as gw:
        _, token = ledger.keys.create("k", rpm_limit=2)
        assert [_post(gw.url, token).status_code for _ in range(3)] == [200, 200, 429]


def test_cli_sets_and_changes_rate_limits(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    created = runner.invoke(app, ["keys", "create", "team", "--rpm", "60", "--tpm", "10000", "--ledger", path, "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    assert info["rpm_limit"] == 60 and info["tpm_limit"] == 10000 and info["spend_limit_usd"] is None
    updated = runner.invoke(app, ["keys", "update", info["id"], "--rpm", "0", "--limit", "5", "--ledger", path, "--json"])
    assert updated.exit_code == 0, updated.output
    after = json.loads(updated.stdout)
    assert after["rpm_limit"] is None and after["tpm_limit"] == 10000 and after["spend_limit_usd"] == 5.0
    listed = runner.invoke(app, ["keys", "list", "--ledger", path])
    assert "10000" in listed.stdout
    bad = runner.invoke(app, ["keys", "update", info["id"], "--tpm", "-3", "--ledger", path])
    assert bad.exit_code == 2 and "error: tokens per minute must be a whole number >= 1" in bad.output
    nothing = runner.invoke(app, ["keys", "update", info["id"], "--ledger", path])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    unknown = runner.invoke(app, ["keys", "update", "key_nope", "--rpm", "3", "--ledger", path])
    assert unknown.exit_code == 2 and "no API key" in unknown.output
