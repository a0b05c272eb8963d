"""Rows lost to a SIGKILL: answered responses vs ledger rows, with a real ``calibroute serve``.

Each run, on 127.0.0.1: a fast canned OpenAI-compatible backend (bench/gateway_fast_backend.py),
``calibroute serve`` in front of it (real SQLite or PostgreSQL ledger, its journal as
configured), load from ``wrk`` (Debian package; or Python client processes x threads), keep-alive,
every third request streamed,
for ``--duration`` seconds, then ``kill -9`` of the gateway while the load runs. The gateway
is started again on the same ledger (it replays its journal), then stopped with SIGTERM.
An answered response is a 200 whose body arrived whole (a stream up to ``[DONE]``); its
``x-request-id`` must be in the ledger. Reports per run: answered, rows for them, lost.

    python bench/ledger_kill.py --runs 5 --duration 10 --out bench/out/ledger_kill.json
    python bench/ledger_kill.py --runs 5 --journal off          # without the journal
    python bench/ledger_kill.py --src /tmp/old/src               # another source tree's gateway

``measure`` is also the bounded kill test's engine (tests/test_ledger_kill.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Summarize in one sentence: the meeting moved to Tuesday at 3pm."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited while starting: {proc.stderr.read().decode()[-3000:] if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not start: {url}")


def client(base: str, model: str, stream_every: int, stop: threading.Event, answered: list[str] | None = None) -> list[str]:
    """Requests back to back until the server goes away (or ``stop``); the ids of whole answers
    (appended to ``answered`` as they come, if given)."""
    answered = [] if answered is None else answered
    with httpx.Client(base_url=base, timeout=10) as http:
        for i in range(10**9):
            if stop.is_set():
                break
            body: dict[str, object] = {"model": model, "messages": MESSAGES, "max_tokens": 64}
            try:
                if stream_every and i % stream_every == 0:
                    body["stream"] = True
                    with http.stream("POST", "/v1/chat/completions", json=body) as r:
                        text = b"".join(r.iter_bytes())
                        whole = r.status_code == 200 and text.rstrip().endswith(b"data: [DONE]")
                else:
                    r = http.post("/v1/chat/completions", json=body)
                    whole = r.status_code == 200 and "choices" in r.json()
            except (httpx.TransportError, ValueError):
                break  # killed mid-request: not answered
            if whole:
                answered.append(r.headers["x-request-id"])
    return answered


def client_process(args: tuple[str, str, int, int], out: list[list[str]] | None = None) -> list[str]:
    """``threads`` clients in one process (run in a pool: several processes of load)."""
    base, model, stream_every, threads = args
    stop = threading.Event()
    out = [list[str]() for _ in range(threads)] if out is None else out

    def run(k: int) -> None:
        client(base, model, stream_every, stop, out[k])

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [rid for ids in out for rid in ids]


@dataclass
class Run:
    answered: int
    rows_for_answered: int
    lost: int
    rows_total: int
    replayed: int
    restart_s: float


WRK_SCRIPT = """
local n, counter, out = 0, 0, nil
function setup(thread) n = n + 1; thread:set("tid", n) end
function init(args)
  out = io.open(args[1] .. "-" .. tid .. ".ids", "w")
  out:setvbuf("line")
end
function request()
  counter = counter + 1
  local streamed = %(stream_every)d > 0 and counter %% %(stream_every)d == 0
  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json"},
                    streamed and [[%(streamed)s]] or [[%(plain)s]])
end
function response(status, headers, body)  -- called for whole responses only
  local id = headers["x-request-id"]
  if status == 200 and id and (body:sub(1, 1) == "{" or body:find("data: [DONE]", 1, true)) then
    out:write(id, "\\n")
  end
end
"""


Progress = Callable[[], int]


def start_load(base: str, *, model: str, stream_every: int, duration_s: float, procs: int, threads: int,
               connections: int, workdir: Path) -> tuple[Progress, Callable[[], list[str]]]:
    """Start the load; return how many answered so far (unknown with Python client processes:
    a large number) and a function that waits for the load to end (the server gone) and gives the
    ids of whole answers. ``connections`` > 0: wrk (C, full speed), else Python clients."""
    if connections > 0:
        body = {"model": model, "messages": MESSAGES, "max_tokens": 64}
        script = workdir / "kill.lua"
        script.write_text(WRK_SCRIPT % {"stream_every": stream_every, "plain": json.dumps(body),
                                        "streamed": json.dumps({**body, "stream": True})})
        prefix = workdir / f"ids-{time.monotonic_ns()}"
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{int(duration_s) + 3}s", "-s", str(script), base,
                                "--", str(prefix)], stdout=open(workdir / "wrk.out", "w"), stderr=subprocess.STDOUT)

        def collect_wrk() -> list[str]:
            wrk.wait(60)
            return wrk_ids(workdir, prefix)
        return lambda: len(wrk_ids(workdir, prefix)), collect_wrk
    job = (base, model, stream_every, threads)
    if procs > 1:
        pool = multiprocessing.get_context("fork").Pool(procs)
        pending = pool.map_async(client_process, [job] * procs)

        def collect_pool() -> list[str]:
            try:
                return [rid for ids in pending.get(60) for rid in ids]
            finally:
                pool.close()
        return lambda: 1 << 30, collect_pool
    out = [list[str]() for _ in range(threads)]
    loader = threading.Thread(target=client_process, args=(job, out))
    loader.start()

    def collect_thread() -> list[str]:
        loader.join(60)
        return [rid for ids in out for rid in ids]
    return lambda: sum(map(len, out)), collect_thread


def wrk_ids(workdir: Path, prefix: Path) -> list[str]:
    """The ids wrk's threads wrote so far (one file per thread)."""
    return [line for f in workdir.glob(prefix.name + "-*.ids") for line in f.read_text().split()]


def measure(serve_cmd: Callable[[int], list[str]], ledger_ids: Callable[[], set[str]], *, duration_s: float,
            procs: int = 1, threads: int = 4, connections: int = 0, stream_every: int = 3, model: str = "fast",
            env: dict[str, str] | None = None, min_answered: int = 1, workdir: Path | None = None,
            before_kill: Callable[[Progress], None] = lambda progress: None, after_kill: Callable[[], None] = lambda: None,
            reopen: Callable[[], int] | None = None) -> Run:
    """Start the gateway, load it, SIGKILL it under load, start it again, stop it cleanly; count.

    ``before_kill(progress)`` runs after ``duration_s`` of load, while the load goes on (a test
    stalls the database there until more answers came, so the kill finds rows answered and
    not yet committed); ``progress()`` is the number answered so far. ``after_kill`` runs
    before the restart. ``reopen`` replaces the restart of the gateway by a quicker opening of
    the ledger (which replays the journal the same way) and returns the rows replayed."""
    env = {**os.environ, **(env or {})}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gw = subprocess.Popen(serve_cmd(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_ready(base + "/healthz", gw)
        progress, collect = start_load(base, model=model, stream_every=stream_every, duration_s=duration_s, procs=procs,
                                       threads=threads, connections=connections, workdir=workdir or Path(tempfile.mkdtemp()))
        time.sleep(duration_s)
        deadline = time.monotonic() + 300  # a starved machine: load on until ``min_answered``
        while progress() < min_answered and time.monotonic() < deadline:
            time.sleep(0.05)
        before_kill(progress)
        gw.send_signal(signal.SIGKILL)
        answered = collect()
    finally:
        if gw.poll() is None:
            gw.kill()
        gw.wait(10)
        after_kill()
    if len(answered) < min_answered:
        raise RuntimeError(f"only {len(answered)} answered before the kill: {gw.stderr.read().decode()[-2000:] if gw.stderr else ''}")
    started = time.monotonic()
    replayed = reopen() if reopen is not None else restart(serve_cmd, env)
    restart_s = time.monotonic() - started
    stored = ledger_ids()
    have = sum(1 for rid in answered if rid in stored)
    return Run(answered=len(answered), rows_for_answered=have, lost=len(answered) - have, rows_total=len(stored),
               replayed=replayed, restart_s=round(restart_s, 2))


def restart(serve_cmd: Callable[[int], list[str]], env: dict[str, str]) -> int:
    """Start the gateway again (it replays the journal), stop it with SIGTERM; rows replayed."""
    port = free_port()
    again = subprocess.Popen(serve_cmd(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", again)
    finally:
        again.terminate()
        _, err = again.communicate(timeout=30)
    return sum(int(n) for n in re.findall(rb"replayed (\d+) rows", err))


def sqlite_ids(path: Path) -> Callable[[], set[str]]:
    def ids() -> set[str]:
        with sqlite3.connect(path) as conn:
            return {r[0] for r in conn.execute("select request_id from requests")}
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load before the kill")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (full speed); 0: Python clients")
    ap.add_argument("--procs", type=int, default=2, help="Python client processes (with --connections 0)")
    ap.add_argument("--threads", type=int, default=8, help="Python client threads per process")
    ap.add_argument("--journal", default="auto", help="the gateway's --ledger-journal (auto, off, a directory)")
    ap.add_argument("--src", type=Path, default=None, help="run the gateway from this source tree (PYTHONPATH)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ledger_kill.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="calibroute-kill-"))
    backend_port = free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    (work / "portfolio.yaml").write_text(
        f"models:\n  - {{name: fast, backend: {{base_url: '{backend}/v1'}}, input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.2}}\n"
        "routes:\n" + "".join(f"  {c}: {{models: [fast], budget: {{max_output_tokens: 256}}}}\n"
                              for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"))
        + "aliases: {auto: auto}\nrouting: {escalation: {threshold: 0.0}}\n")
    env = {"PYTHONPATH": str(args.src)} if args.src else {}
    runs = []
    backend_proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gateway_fast_backend.py"), "--port", str(backend_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(backend + "/v1/models", backend_proc)
        for k in range(args.runs):
            ledger = work / f"ledger-{k}.db"
            journal = ["--ledger-journal", args.journal] if args.journal != "auto" else []

            def cmd(port: int, ledger: Path = ledger, journal: list[str] = journal) -> list[str]:
                return [sys.executable, "-c", "from calibroute.cli import main; main()", "serve", "--config",
                        str(work / "portfolio.yaml"), "--port", str(port), "--ledger", str(ledger), "--log-level", "warning",
                        *journal]

            run = measure(cmd, sqlite_ids(ledger), duration_s=args.duration, procs=args.procs, threads=args.threads,
                          connections=args.connections, env=env, workdir=work)
            runs.append(asdict(run))
            print(json.dumps({"run": k + 1, **asdict(run)}), flush=True)
    finally:
        backend_proc.terminate()
        backend_proc.wait(10)
    meta = {"journal": args.journal, "src": str(args.src or ROOT / "src"), "duration_s": args.duration,
            "connections": args.connections, "procs": args.procs, "threads": args.threads,
            "load_1m_after": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    print("lost per run:", [r["lost"] for r in runs], "of answered:", [r["answered"] for r in runs])


if __name__ == "__main__":
    main()
