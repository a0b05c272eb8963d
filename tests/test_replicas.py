"""More than one replica: real ``calibroute serve`` processes, PostgreSQL, HAProxy on loopback.

- ``--workers 2``: every scrape of ``/metrics`` shows the whole replica (both workers).
- two replicas behind HAProxy sharing PostgreSQL: spend overshoot <= one request's
  estimate with 16 concurrent clients; a revoked key stops on both within 1 s; one replica
  killed (SIGKILL) under load: <= 1 % client errors, every answered request has its row.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster, cluster, haproxy_binary
from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml, serve_models, standard_fakes
from promtext import total
from sqlalchemy import select
from test_ledger_db import _pg_schema_url

from calibroute.config import parse_portfolio
from calibroute.gateway.spend import upper_bound_usd
from calibroute.ledger import open_ledger, tables
from calibroute.router import Router
from calibroute.types import Hints

pytestmark = pytest.mark.slow
BODY = {"model": "small", "messages": [{"role": "user", "content": "Say hello to the whole team please"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[dict, dict]]:  # type: ignore[type-arg]
    fakes = standard_fakes()
    with serve_models(*fakes.values()) as urls:
        yield fakes, urls


@pytest.fixture(scope="module")
def config(backends, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    _, urls = backends
    path = tmp_path_factory.mktemp("replicas") / "portfolio.yaml"
    path.write_text(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
    return path


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url()


@pytest.fixture(scope="module")
def two_replicas(config: Path, pg_url: str) -> Iterator[Cluster]:
    if not haproxy_binary():
        pytest.skip("haproxy not found (.ci/setup.d/haproxy.sh installs it)")
    with cluster(config, pg_url, 2) as c:
        yield c


def post(url: str, token: str | None = None, client: httpx.Client | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return (client or httpx).post(url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)  # type: ignore[union-attr]


def wait_for_key(c: Cluster, token: str) -> None:
    """Until every replica knows the key (pushed by NOTIFY on PostgreSQL)."""
    deadline = time.monotonic() + 15
    for r in c.replicas:
        while httpx.get(r.url + "/v1/models", headers={"authorization": f"Bearer {token}"}).status_code != 200:
            assert time.monotonic() < deadline, "the new key never reached every replica"
            time.sleep(0.05)


def estimate(config: Path) -> float:
    from stubs import KeywordClassifier, LengthDifficulty

    portfolio = parse_portfolio(config.read_text())
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    decision = router.decide(messages=BODY["messages"], hints=Hints(model="small", max_output_tokens=BODY["max_tokens"]))
    return upper_bound_usd(portfolio, decision)


def test_metrics_of_two_workers_add_up_on_every_scrape(config: Path, tmp_path: Path) -> None:
    with cluster(config, str(tmp_path / "ledger.db"), 1, workers=2, haproxy=False) as c:
        prefixes = set()
        for _ in range(30):
            r = post(c.url)  # a new connection each time: the kernel spreads them over the workers
            assert r.status_code == 200
            prefixes.add(r.headers["x-request-id"][:12])
        assert len(prefixes) == 2, "both workers should have answered"
        seen = [total(httpx.get(c.url + "/metrics").text, "calibroute_requests_total") for _ in range(6)]
    assert seen == [30.0] * 6


@pytest.mark.postgres
@pytest.mark.haproxy
def test_spend_overshoot_across_two_replicas_is_at_most_one_estimate(backends, config: Path, pg_url: str,
                                                                     two_replicas: Cluster) -> None:
    fakes, _ = backends
    fakes["small"].delay_s = 0.3  # all 16 requests in flight together, spread over both replicas
    est = estimate(config)
    with open_ledger(pg_url) as admin:
        key, token = admin.keys.create("team", spend_limit_usd=5 * est)
    wait_for_key(two_replicas, token)
    answers: list[httpx.Response] = []
    start = threading.Barrier(16)

    def one() -> None:
        start.wait()
        answers.append(post(two_replicas.url, token))

    try:
        threads = [threading.Thread(target=one) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        fakes["small"].delay_s = 0.0
    ok = [r for r in answers if r.status_code == 200]
    assert len(answers) == 16 and all(r.status_code in (200, 429) for r in answers)
    assert len({r.headers["x-request-id"][:12] for r in answers}) == 2, "both replicas should have answered"
    assert len(ok) >= 1  # more than 5 only when early answers were written (at their actual cost, below the estimate)
    assert sum(float(r.headers["x-calibroute-cost-usd"]) for r in ok) <= 5 * est + est


@pytest.mark.postgres
@pytest.mark.haproxy
def test_a_revoked_key_stops_on_every_replica_within_one_second(pg_url: str, two_replicas: Cluster) -> None:
    with open_ledger(pg_url) as admin:
        key, token = admin.keys.create("leaver")
        wait_for_key(two_replicas, token)
        admin.revoke_key(key.id)
        revoked = time.monotonic()
        pending = {r.url for r in two_replicas.replicas}
        while pending and time.monotonic() - revoked < 1.0:
            pending = {u for u in pending if post(u, token).status_code != 401}
    assert not pending, f"still accepted 1 s after revocation by {pending}"


@pytest.mark.postgres
@pytest.mark.haproxy
def test_killing_a_replica_under_load_costs_at_most_one_percent(backends, pg_url: str, two_replicas: Cluster) -> None:
    fakes, _ = backends
    with open_ledger(pg_url) as admin:
        _, token = admin.keys.create("load")
    wait_for_key(two_replicas, token)
    fakes["small"].delay_s = 0.02
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client() as session:
            while not stop.is_set():
                try:
                    r = post(two_replicas.url, token, client=session)
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    continue
                if r.status_code == 200:
                    answered.append(r.headers["x-request-id"])
                else:
                    failures.append(str(r.status_code))

    threads = [threading.Thread(target=client) for _ in range(16)]
    victim = two_replicas.replicas[0]
    try:
        for t in threads:
            t.start()
        while len(answered) < 150:
            time.sleep(0.05)
        victim.stop(signal.SIGKILL)
        killed_at = len(answered)
        while len(answered) < killed_at + 300:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        fakes["small"].delay_s = 0.0
    total = len(answered) + len(failures)
    assert len(failures) <= 0.01 * total, f"{len(failures)} of {total} failed: {sorted(set(failures))}"
    victim.start()  # as systemd's Restart= would: a journal of unwritten rows is replayed here
    two_replicas.replicas[1].stop(signal.SIGTERM)  # graceful: its queued rows are written
    with open_ledger(pg_url) as ledger, ledger.engine.connect() as conn:
        recorded = set(conn.execute(select(tables.requests.c.request_id)).scalars())
    missing = [rid for rid in answered if rid not in recorded]
    print(f"killed replica: {len(failures)} of {total} requests failed, {len(missing)} answered without a row")
    if missing and importlib.util.find_spec("calibroute.ledger.journal") is None:
        pytest.xfail(f"{len(missing)} rows lost with the killed process: needs the ledger's local journal (issue 12)")
    assert not missing, f"{len(missing)} answered requests have no ledger row"
