"""Several ``calibroute serve`` processes behind a real HAProxy, on loopback ports.

Used by tests/test_replicas.py and bench/replicas.py. Every process started here is
stopped here. The replicas route with the deterministic stub estimators (tests/stubs.py),
registered through the production registry as tests/test_gateway_cli.py does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import free_port, wait_healthy

TESTS = Path(__file__).resolve().parent
HAPROXY_ENV = "CALIBROUTE_TEST_HAPROXY"
LAUNCH = (
    "import sys; sys.path.insert(0, {tests!r}); from calibroute import classify; "
    "classify.CLASSIFIERS['default'] = 'stubs:KeywordClassifier'; classify.DIFFICULTY['default'] = 'stubs:LengthDifficulty'; "
    "from calibroute.cli import main; sys.argv = ['calibroute', 'serve'] + sys.argv[1:]; main()"
)


def haproxy_binary() -> str | None:
    return os.environ.get(HAPROXY_ENV) or shutil.which("haproxy")


@dataclass
class Replica:
    port: int
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> None:  # generous: CI machines are shared
        cmd = [sys.executable, "-c", LAUNCH.format(tests=str(TESTS)), *self.args, "--port", str(self.port)]
        assert self.log is not None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), env=self.env,
                                     start_new_session=True)  # its own process group: SIGKILL reaches its workers too
        wait_healthy(self.url, self.proc, timeout_s)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: graceful (uvicorn stops its workers); SIGKILL: the whole group at once, as a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def haproxy_config(port: int, servers: list[int]) -> str:
    """What docs/deploy.md recommends, on loopback ports with short health-check intervals."""
    lines = [
        "global", "    maxconn 4096", "    log stderr format raw local0 info", "",
        "defaults", "    mode http", "    log global", "    option httplog", "    option dontlog-normal", "    timeout connect 1s", "    timeout client 60s", "    timeout server 60s",
        "    retries 3", "    option redispatch 1", "    option http-buffer-request",
        "    retry-on conn-failure empty-response", "",
        "frontend calibroute", f"    bind 127.0.0.1:{port}", "    default_backend gateways", "",
        "backend gateways", "    balance leastconn", "    option httpchk", "    http-check send meth GET uri /healthz",
        "    http-check expect status 200", "    default-server inter 200ms fall 2 rise 2",
        *[f"    server r{i} 127.0.0.1:{p} check" for i, p in enumerate(servers)], "",
    ]
    return "\n".join(lines)


@dataclass
class Cluster:
    replicas: list[Replica]
    url: str  # HAProxy's frontend
    workdir: Path
    logs: list[Path] = field(default_factory=list)

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextmanager
def cluster(config: Path, ledger: str, n: int = 2, *, workers: int = 1, extra: tuple[str, ...] = (),
            haproxy: bool = True, gateway_src: str | None = None) -> Iterator[Cluster]:
    """``n`` replicas sharing ``ledger``, behind HAProxy when ``haproxy`` (else ``url`` is replica 0).
    ``gateway_src``: run the replicas from another checkout's ``src`` (a baseline for benchmarks)."""
    work = Path(tempfile.mkdtemp(prefix="calibroute-cluster-"))
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["CALIBROUTE_LEDGER_JOURNAL"] = str(work / "journal")  # shared by the replicas, as on one host
    if gateway_src:
        env["PYTHONPATH"] = gateway_src
    args = ["--config", str(config), "--ledger", ledger, "--log-level", "warning", *extra]
    replicas = [Replica(free_port(), [*args, *(["--workers", str(workers)] if workers > 1 else [])], env) for _ in range(n)]
    with ExitStack() as stack:
        if not os.environ.get("CALIBROUTE_KEEP_CLUSTER_LOGS"):
            stack.callback(shutil.rmtree, work, True)
        for i, r in enumerate(replicas):
            r.log = work / f"replica{i}.log"
            stack.callback(r.stop)
            r.start()
        url = replicas[0].url
        if haproxy:
            binary = haproxy_binary()
            assert binary, "haproxy not found"
            port = free_port()
            cfg = work / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, [r.port for r in replicas]))
            proc = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                                    stderr=(work / "haproxy.log").open("ab"))
            stack.callback(_stop, proc)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, 20)
        yield Cluster(replicas, url, work, [r.log for r in replicas if r.log])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- load: what tests/test_replicas.py and bench/replicas.py send ---------------------------
BODY = {"model": "small", "messages": [{"role": "user", "content": "Say hello to the whole team please"}], "max_tokens": 8}


def post(url: str, token: str | None = None, client: httpx.Client | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return (client or httpx).post(url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)  # type: ignore[union-attr]


def burst(url: str, token: str | None, n: int) -> list[httpx.Response]:
    """``n`` requests released together from ``n`` threads."""
    answers: list[httpx.Response] = []
    start = threading.Barrier(n)

    def one() -> None:
        start.wait()
        answers.append(post(url, token))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


class Load:
    """``clients`` threads, each posting in a loop on its own keep-alive connection, until closed."""

    def __init__(self, url: str, token: str | None, clients: int = 16) -> None:
        self.url, self.token = url, token
        self.answered: list[str] = []  # x-request-id of every 200
        self.failures: list[str] = []  # status code or exception name of the others
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client() as session:
            while not self._stop.is_set():
                try:
                    r = post(self.url, self.token, client=session)
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                (self.answered if r.status_code == 200 else self.failures).append(
                    r.headers["x-request-id"] if r.status_code == 200 else str(r.status_code))

    def wait_answered(self, n: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answered) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.answered)} of {n} answered in {timeout_s:.0f} s")
            time.sleep(0.05)

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def wait_for_key(c: Cluster, token: str, timeout_s: float = 15) -> None:
    """Until every replica knows the key (pushed by NOTIFY on PostgreSQL)."""
    deadline = time.monotonic() + timeout_s
    for r in c.replicas:
        while httpx.get(r.url + "/v1/models", headers={"authorization": f"Bearer {token}"}).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the new key never reached every replica")
            time.sleep(0.05)


def kill_one_under_load(c: Cluster, token: str, *, before: int = 150, after: int = 300) -> Load:
    """Load through HAProxy; SIGKILL replica 0 after ``before`` answers, go on for ``after`` more."""
    with Load(c.url, token) as load:
        load.wait_answered(before)
        c.replicas[0].stop(signal.SIGKILL)
        load.wait_answered(len(load.answered) + after)
    return load


def unrecorded_after_restart(c: Cluster, ledger_url: str, answered: list[str]) -> list[str]:
    """Restart the killed replica (as systemd's Restart= would: a local journal of unwritten rows
    is replayed then), stop every replica gracefully (queued rows are written), and return the
    answered request ids that have no ledger row."""
    from sqlalchemy import select

    from calibroute.ledger import open_ledger, tables

    c.replicas[0].start()
    for r in c.replicas:
        r.stop(signal.SIGTERM)
    with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        recorded = set(conn.execute(select(tables.requests.c.request_id)).scalars())
    return [rid for rid in answered if rid not in recorded]


def estimate_usd(config: Path) -> float:
    """The reservation one ``BODY`` request makes (its upper-bound cost), routed as the replicas route."""
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import parse_portfolio
    from calibroute.gateway.spend import upper_bound_usd
    from calibroute.router import Router
    from calibroute.types import Hints

    portfolio = parse_portfolio(config.read_text())
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    decision = router.decide(messages=BODY["messages"], hints=Hints(model="small", max_output_tokens=BODY["max_tokens"]))
    return upper_bound_usd(portfolio, decision)


def failover_run(c: Cluster, ledger_url: str, fakes: dict) -> tuple[Load, list[str]]:  # type: ignore[type-arg]
    """A key for the load, replica 0 killed under it (backend answering in 20 ms), then the
    answered requests without a ledger row once the replica is back."""
    from calibroute.ledger import open_ledger

    with open_ledger(ledger_url) as admin:
        _, token = admin.keys.create("load")
    wait_for_key(c, token)
    fakes["small"].delay_s = 0.02
    try:
        load = kill_one_under_load(c, token)
    finally:
        fakes["small"].delay_s = 0.0
    return load, unrecorded_after_restart(c, ledger_url, load.answered)
