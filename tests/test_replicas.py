"""More than one replica: real ``calibroute serve`` processes, PostgreSQL, HAProxy on loopback.

- ``--workers 2``: every scrape of ``/metrics`` shows the whole replica (both workers).
- two replicas behind HAProxy sharing PostgreSQL: spend overshoot <= one request's
  estimate with 16 concurrent clients; a revoked key stops on both within 1 s; one replica
  killed (SIGKILL) under load: <= 1 % client errors, every answered request has its row.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster, burst, cluster, estimate_usd, failover_run, haproxy_binary, post, wait_for_key
from fake_backend import CONTROLS, STANDARD_ROUTES, portfolio_yaml, serve_models, standard_fakes
from promtext import total
from test_ledger_db import _pg_schema_url

from calibroute.ledger import open_ledger
from calibroute.ledger.reservations import reserved_usd

pytestmark = pytest.mark.slow


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


def test_metrics_of_two_workers_add_up_on_every_scrape(config: Path, tmp_path: Path) -> None:
    with cluster(config, str(tmp_path / "ledger.db"), 1, workers=2, haproxy=False) as c:
        prefixes, sent = set(), 0
        while len(prefixes) < 2 or sent < 30:  # until both workers (one may still be starting) have answered
            r = post(c.url)  # a new connection each time: the kernel spreads them over the workers
            assert r.status_code == 200 and sent < 500
            prefixes.add(r.headers["x-request-id"][:12])
            sent += 1
        seen = [total(httpx.get(c.url + "/metrics").text, "calibroute_requests_total") for _ in range(6)]
    assert seen == [float(sent)] * 6


@pytest.mark.postgres
@pytest.mark.haproxy
def test_spend_overshoot_across_two_replicas_is_at_most_one_estimate(backends, config: Path, pg_url: str,
                                                                     two_replicas: Cluster) -> None:
    fakes, _ = backends
    fakes["small"].delay_s = 0.3  # all 16 requests in flight together, spread over both replicas
    est = estimate_usd(config)
    with open_ledger(pg_url) as admin:
        key, token = admin.keys.create("team", spend_limit_usd=5 * est)
    wait_for_key(two_replicas, token)
    try:
        answers = burst(two_replicas.url, token, 16)
    finally:
        fakes["small"].delay_s = 0.0
    ok = [r for r in answers if r.status_code == 200]
    assert len(answers) == 16 and all(r.status_code in (200, 429) for r in answers)
    assert len({r.headers["x-request-id"][:12] for r in answers}) == 2, "both replicas should have answered"
    assert len(ok) >= 1  # more than 5 only when early answers were written (at their actual cost, below the estimate)
    served = sum(float(r.headers["x-calibroute-cost-usd"]) for r in ok)
    assert served <= 5 * est + est
    with open_ledger(pg_url) as ledger:  # both replicas settled: holds released, actual costs charged
        deadline = time.monotonic() + 10
        while reserved_usd(ledger.engine, key.id) > 1e-12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reserved_usd(ledger.engine, key.id) == pytest.approx(0.0, abs=1e-12)
        ledger.keys.reload()  # the key cache was seeded at open, possibly before the last settlement landed
        assert ledger.keys.spent_usd(key.id) == pytest.approx(served)


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
    load, missing = failover_run(two_replicas, pg_url, fakes)
    answered, failures = load.answered, load.failures
    n = len(answered) + len(failures)
    assert len(failures) <= 0.01 * n, f"{len(failures)} of {n} failed: {sorted(set(failures))}"
    print(f"killed replica: {len(failures)} of {n} requests failed, {len(missing)} answered without a row")
    if missing and importlib.util.find_spec("calibroute.ledger.journal") is None:
        pytest.xfail(f"{len(missing)} rows lost with the killed process: needs the ledger's local journal (issue 12)")
    assert not missing, f"{len(missing)} answered requests have no ledger row"
