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
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import free_port

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

    def start(self, timeout_s: float = 60) -> None:
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


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} exited with status {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become healthy in {timeout_s:.0f} s")
        time.sleep(0.1)


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
            haproxy: bool = True) -> Iterator[Cluster]:
    """``n`` replicas sharing ``ledger``, behind HAProxy when ``haproxy`` (else ``url`` is replica 0)."""
    work = Path(tempfile.mkdtemp(prefix="calibroute-cluster-"))
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    replicas = [Replica(free_port(), ["--config", str(config), "--ledger", ledger, "--workers", str(workers),
                                      "--log-level", "warning", *extra], env) for _ in range(n)]
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
