"""Load with faults: what clients see, what the ledger says, and what the gateway holds in memory.

Starts, on 127.0.0.1: the fault-injecting fake backend of tests/fake_backend.py (its own
process; ``--fault-rate`` of backend calls get one fault drawn from every kind: 500, 429
with Retry-After, hang, dropped stream, error event, non-SSE 200, negative usage, slow
body, truncated body, error echoing the prompt), and ``calibroute serve`` in front of it
(real SQLite ledger; two models, each the other's fallback; read timeout 1 s so hangs
resolve). Client keys are on: most clients use unlimited keys (success rate, latency),
``--limited-clients`` share keys with a small spend limit (overshoot). Clients are the
official ``openai`` async client, half streamed, for ``--duration`` seconds. Then the
gateway is stopped (SIGTERM: the ledger flushes) and its rows are compared with the
responses the clients received.

    python bench/reliability.py --clients 16 --duration 60 --fault-rate 0.1 --out bench/out/reliability.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fault-injecting backend and free_port live with the tests

from servers import free_port  # noqa: E402

PROMPTS = ["Summarize in one sentence: the meeting moved to Tuesday at 3pm.",
           "Write a short poem about the sea.", "What is the capital of France?"]


def serve_fake(port: int, fault_rate: float, seed: int) -> None:
    """The fake backend, in this process, until killed (``--serve-fake``)."""
    import uvicorn
    from fake_backend import FakeModel

    fake = FakeModel(name="fake", reply="Hello from a sometimes broken backend, with a few more words.",
                     fault_rate=fault_rate, seed=seed, chunk_delay_s=0.002)
    uvicorn.run(fake.app(), host="127.0.0.1", port=port, log_level="critical")  # its faults raise on purpose


def portfolio(backend: str) -> str:
    model = ("  - {{name: {name}, backend: {{base_url: '{url}/v1', connect_timeout_s: 1, read_timeout_s: 1, "
             "total_timeout_s: 5}}, input_usd_per_mtok: 3, output_usd_per_mtok: 15}}\n")
    routes = "".join(f"  {c}: {{models: [{a}, {b}], budget: {{max_output_tokens: 64}}}}\n"
                     for c, a, b in (("SIMPLE", "primary", "backup"), ("REASONING", "backup", "primary"),
                                     ("OPEN_ENDED", "primary", "backup"), ("GENERAL", "backup", "primary")))
    return ("models:\n" + model.format(name="primary", url=backend) + model.format(name="backup", url=backend)
            + "routes:\n" + routes + "aliases: {auto: auto}\nrouting: {escalation: {threshold: 0.0}}\n")


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited while starting: {url}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"server did not start: {url}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client_loop(base: str, key: str, stream: bool, until: float, results: list[dict[str, object]]) -> None:
    async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=30) as client:
        i = 0
        while time.monotonic() < until:
            i += 1
            messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
            started = time.perf_counter()
            rec: dict[str, object] = {"key": key, "stream": stream}
            try:
                if stream:
                    raw = await client.chat.completions.with_raw_response.create(model="auto", messages=messages, stream=True)
                    rec["id"] = raw.headers.get("x-request-id")
                    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
                else:
                    raw = await client.chat.completions.with_raw_response.create(model="auto", messages=messages)
                    rec["id"] = raw.headers.get("x-request-id")
                    text = raw.parse().choices[0].message.content or ""
                rec["outcome"] = "ok" if text else "empty"
            except openai.APIStatusError as exc:
                rec["id"] = exc.response.headers.get("x-request-id")
                rec["outcome"] = f"http_{exc.status_code}"
                if exc.status_code == 429:
                    await asyncio.sleep(0.5)  # a key at its limit: do not spin
            except openai.APIConnectionError:
                rec["outcome"] = "transport"
            except openai.APIError:  # an error event after streaming began (the response had an id)
                rec["outcome"] = "stream_error"
            rec["latency_s"] = time.perf_counter() - started
            results.append(rec)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--limited-clients", type=int, default=4, help="of --clients, these share two keys with a spend limit")
    ap.add_argument("--spend-limit", type=float, default=0.01, help="USD per limited key")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--fault-rate", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--serve-fake", nargs=3, metavar=("PORT", "RATE", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake:
        serve_fake(int(args.serve_fake[0]), float(args.serve_fake[1]), int(args.serve_fake[2]))
        return

    from calibroute.ledger import open_ledger

    work = Path(tempfile.mkdtemp(prefix="calibroute-reliability-"))
    fake_port, gw_port = free_port(), free_port()
    (work / "portfolio.yaml").write_text(portfolio(f"http://127.0.0.1:{fake_port}"))
    ledger_path = work / "ledger.db"
    ledger = open_ledger(ledger_path)
    open_keys = [ledger.create_key(f"open-{i}")[1] for i in range(4)]
    limited = {ledger.create_key(f"limited-{i}", spend_limit_usd=args.spend_limit)[1]: f"limited-{i}" for i in range(2)}
    ledger.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(fake_port), str(args.fault_rate), str(args.seed)],
                            env=env)
    gateway = subprocess.Popen([sys.executable, "-c", "from calibroute.cli import main; main()", "serve",
                                "--config", str(work / "portfolio.yaml"), "--ledger", str(ledger_path),
                                "--port", str(gw_port), "--log-level", "warning"], env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{gw_port}/v1"
    results: list[dict[str, object]] = []
    rss: list[float] = []
    try:
        wait_ready(f"http://127.0.0.1:{fake_port}/v1/models", fake)
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz", gateway)
        rss.append(rss_mib(gateway.pid))

        async def run() -> None:
            until = time.monotonic() + args.duration
            keys = [list(limited)[i % 2] if i < args.limited_clients else open_keys[i % len(open_keys)]
                    for i in range(args.clients)]
            tasks = [asyncio.create_task(client_loop(base, k, i % 2 == 1, until, results)) for i, k in enumerate(keys)]
            while not all(t.done() for t in tasks):
                rss.append(rss_mib(gateway.pid))
                await asyncio.sleep(1)
            await asyncio.gather(*tasks)

        asyncio.run(run())
        rss.append(rss_mib(gateway.pid))
    finally:
        gateway.send_signal(signal.SIGTERM)
        _, stderr = gateway.communicate(timeout=60)
        fake.terminate()
        fake.wait(timeout=20)

    db = sqlite3.connect(str(ledger_path))
    rows = dict(db.execute("select request_id, status || ' ' || http_status from requests").fetchall())
    keys = {name: (spent, limit) for name, spent, limit in db.execute("select name, spent_usd, spend_limit_usd from api_keys")}
    max_cost = db.execute("select max(cost_usd) from requests").fetchone()[0] or 0.0
    negative = db.execute("select count(*) from requests where cost_usd < 0 or prompt_tokens < 0").fetchone()[0]

    measured = [r for r in results if r["key"] not in limited]
    ok = [r for r in measured if r["outcome"] == "ok"]
    lat = sorted(float(r["latency_s"]) for r in ok)
    ids = [r.get("id") for r in results if r.get("id")]
    overshoot = {name: round(spent - limit, 6) for name, (spent, limit) in keys.items() if limit is not None}
    report = {
        "command": " ".join(sys.argv), "clients": args.clients, "duration_s": args.duration, "fault_rate": args.fault_rate,
        "requests": len(results), "requests_per_s": round(len(results) / args.duration, 1),
        "success_rate_unlimited_keys": round(len(ok) / max(1, len(measured)), 5),
        "success_rate_by_mode": {mode: round(sum(r["outcome"] == "ok" for r in rs) / max(1, len(rs)), 5)
                                 for mode, rs in (("not_streamed", [r for r in measured if not r["stream"]]),
                                                  ("streamed", [r for r in measured if r["stream"]]))},
        "outcomes_unlimited_keys": dict(Counter(str(r["outcome"]) for r in measured)),
        "outcomes_limited_keys": dict(Counter(str(r["outcome"]) for r in results if r["key"] in limited)),
        "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1),
        "ledger_rows": len(rows), "responses_with_id": len(ids), "responses_without_row": sum(1 for i in ids if i not in rows),
        "rows_by_status": dict(Counter(rows.values())), "rows_with_negative_cost_or_tokens": negative,
        "spend_overshoot_usd": overshoot, "spend_limit_usd": args.spend_limit, "max_request_cost_usd": max_cost,
        "rss_mib": {"start": round(rss[0], 1), "max": round(max(rss), 1), "end": round(rss[-1], 1)},
        "gateway_tracebacks": stderr.decode(errors="replace").count("Traceback"),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
