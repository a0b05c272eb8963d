"""Latency of the gateway's three client APIs on the same backend: what the Anthropic Messages and
OpenAI Responses translations add over chat completions.

Starts, on 127.0.0.1, the fast canned backend (bench/gateway_fast_backend.py) and ``calibroute
serve`` in front of it (real SQLite ledger, a named model, so routing is the same for all), then
measures each endpoint with ``wrk`` on one connection (p50 / p99), whole and streamed, in
interleaved rounds so that background load falls on every endpoint alike. Helpers come from
bench/gateway_latency.py.

    python bench/dialect_latency.py --duration 5 --rounds 3 --out bench/out/dialect_latency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_latency import MESSAGES, ROOT, free_port, process, wrk

BODIES: dict[str, tuple[str, dict[str, object]]] = {
    "chat": ("/v1/chat/completions", {"model": "fast", "messages": MESSAGES, "max_tokens": 64}),
    "messages": ("/v1/messages", {"model": "fast", "messages": MESSAGES, "max_tokens": 64}),
    "responses": ("/v1/responses", {"model": "fast", "input": MESSAGES[0]["content"], "max_output_tokens": 64}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over every endpoint")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "dialect_latency.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="calibroute-bench-"))
    backend_port, gw_port = free_port(), free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    (work / "portfolio.yaml").write_text(
        f"models:\n  - {{name: fast, backend: {{base_url: '{backend}/v1'}}, input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.2}}\n"
        "routes:\n" + "".join(f"  {c}: {{models: [fast], budget: {{max_output_tokens: 256}}}}\n"
                              for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"))
        + "aliases: {auto: auto}\nrouting: {escalation: {threshold: 0.0}}\n")
    samples: dict[str, list[dict[str, float]]] = {}
    serve = [str(Path(sys.executable).parent / "calibroute"), "serve", "--config", str(work / "portfolio.yaml"),
             "--port", str(gw_port), "--ledger", str(work / "ledger.db"), "--log-level", "warning"]
    gw = f"http://127.0.0.1:{gw_port}"
    with process([sys.executable, str(ROOT / "bench" / "gateway_fast_backend.py"), "--port", str(backend_port)], backend + "/v1/models"), \
            process(serve, gw + "/healthz"):
        for name, (path, body) in BODIES.items():  # warm-up
            wrk(gw + path, body, 1, 1, work)
        for _ in range(args.rounds):
            for name, (path, body) in BODIES.items():
                for stream in (False, True):
                    key = f"{name}{'-stream' if stream else ''}"
                    res = wrk(gw + path, {**body, "stream": True} if stream else body, 1, args.duration, work)
                    assert res["errors"] == 0, (key, res)
                    samples.setdefault(key, []).append(res)
                    print(key, json.dumps(res), flush=True)
    summary = {}
    for key, runs in samples.items():
        base = samples["chat-stream" if key.endswith("-stream") else "chat"]
        p50 = statistics.median(r["p50_ms"] for r in runs)
        summary[key] = {"p50_ms": round(p50, 3), "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
                        "p50_vs_chat_ms": round(p50 - statistics.median(r["p50_ms"] for r in base), 3)}
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "runs": samples}, indent=1))


if __name__ == "__main__":
    main()
