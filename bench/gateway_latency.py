"""Added latency and sustained throughput of the calibroute gateway vs LiteLLM's proxy.

Starts, on 127.0.0.1: a fast canned OpenAI-compatible backend (bench/gateway_fast_backend.py),
``calibroute serve`` in front of it (real SQLite ledger, pass-through model and routed "auto"),
and LiteLLM's proxy in its own virtual environment (bench/.venvs/litellm, installed here on
first use, never a project dependency) on the same backend. Load comes from ``wrk``
(Debian package): one connection for latency (p50/p99; added = gateway - direct backend),
then several connection counts for throughput (the best req/s with no errors is reported).
Everything runs one at a time and stops by itself.

    python bench/gateway_latency.py --duration 10 --out bench/out/gateway_latency.json
    python bench/gateway_latency.py --dialects-only --rounds 7 --round-seconds 3   # messages / responses vs chat only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "bench" / ".venvs" / "litellm"
MASTER_KEY = "sk-" + secrets.token_hex(24)  # LiteLLM's proxy refuses to start without one; all targets get it
MESSAGES = [{"role": "user", "content": "Summarize in one sentence: the meeting moved to Tuesday at 3pm."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited while starting: {url}\n{proc.stderr.read().decode()[-3000:] if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server did not start: {url}")


@contextmanager
def process(cmd: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        wait_ready(ready_url, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def litellm_version() -> str:
    out = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


VARY = False  # --vary: every request's text differs (no classifier memo hit), as in real traffic


def wrk(url: str, body: dict[str, object], connections: int, duration: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    lua = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
           f'wrk.headers["Authorization"] = "Bearer {MASTER_KEY}"\n'
           f"wrk.body = {json.dumps(json.dumps(body))}\n")
    if VARY:  # "... at 3pm." becomes "... at 3pm. (request N)", N counting per connection thread
        head, _, tail = json.dumps(body).partition("3pm.")
        lua += (f"counter = 0\nrequest = function()\n  counter = counter + 1\n"
                f"  return wrk.format(nil, nil, nil, {json.dumps(head + '3pm. (request ')} .. counter .. {json.dumps(')' + tail)})\nend\n")
    script.write_text(lua)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return {"p50_ms": ms("50"), "p99_ms": ms("99"), "rps": rps, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", default="8,32,128", help="connection counts for the throughput runs")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--classifier", default="default", help="routing.classifier of the gateway (default, lexical, ...)")
    ap.add_argument("--vary", action="store_true", help="a different prompt text in every request (no classifier memo hits)")
    ap.add_argument("--serve-args", default="", help="extra `calibroute serve` options, e.g. '--ledger-journal off'")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of chat / messages / responses")
    ap.add_argument("--round-seconds", type=int, default=3, help="seconds per endpoint per round")
    ap.add_argument("--dialects-only", action="store_true", help="only the interleaved chat / messages / responses rounds")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "gateway_latency.json")
    args = ap.parse_args()
    global VARY
    VARY = args.vary
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    levels = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="calibroute-bench-"))
    backend_port, gw_port, llm_port = free_port(), free_port(), free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    (work / "portfolio.yaml").write_text(
        f"models:\n  - {{name: fast, backend: {{base_url: '{backend}/v1'}}, input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.2}}\n"
        "routes:\n" + "".join(f"  {c}: {{models: [fast], budget: {{max_output_tokens: 256}}}}\n"
                              for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"))
        + f"aliases: {{auto: auto}}\nrouting: {{escalation: {{threshold: 0.0}}, classifier: {args.classifier}}}\n")
    (work / "litellm.yaml").write_text(
        f"model_list:\n  - model_name: fast\n    litellm_params: {{model: openai/fast, api_base: '{backend}/v1', api_key: sk-x}}\n")
    results: dict[str, dict[str, dict[str, float]]] = {}

    def run_target(name: str, url: str, model: str, stream: bool = False) -> None:
        body: dict[str, object] = {"model": model, "messages": MESSAGES, "max_tokens": 64}
        if url.endswith("/v1/responses"):  # the same request in the Responses API's shape
            body = {"model": model, "input": MESSAGES[0]["content"], "max_output_tokens": 64}
        if stream:
            body["stream"] = True
        wrk(url, body, 1, 2, work)  # warm-up
        res = {"latency": wrk(url, body, 1, args.duration, work)}
        if name != "direct":
            for c in levels:
                res[f"c{c}"] = wrk(url, body, c, args.duration, work)
        results[name] = res
        print(name, json.dumps(res), flush=True)

    with process([sys.executable, str(ROOT / "bench" / "gateway_fast_backend.py"), "--port", str(backend_port)], backend + "/v1/models"):
        if not args.dialects_only:
            run_target("direct", backend + "/v1/chat/completions", "fast")
            run_target("direct-stream", backend + "/v1/chat/completions", "fast", stream=True)
        serve = [str(Path(sys.executable).parent / "calibroute"), "serve", "--config", str(work / "portfolio.yaml"), "--port", str(gw_port),
                 "--ledger", str(work / "ledger.db"), "--log-level", "warning", *args.serve_args.split()]
        gw = f"http://127.0.0.1:{gw_port}"
        with process(serve, gw + "/healthz"):
            if not args.dialects_only:
                run_target("calibroute", gw + "/v1/chat/completions", "fast")
                run_target("calibroute-auto", gw + "/v1/chat/completions", "auto")
                run_target("calibroute-stream", gw + "/v1/chat/completions", "fast", stream=True)
            # the agent APIs against chat completions in the same gateway process, interleaved (see dialect_rounds)
            results["_dialects"] = dialect_rounds(gw, args.rounds, args.round_seconds, work)  # type: ignore[assignment]
        if not args.skip_litellm and not args.dialects_only:
            exe = ensure_litellm()
            env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR",
                   "LITELLM_MASTER_KEY": MASTER_KEY}
            cmd = [str(exe), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(llm_port), "--num_workers", "1"]
            llm = f"http://127.0.0.1:{llm_port}"
            with process(cmd, llm + "/health/liveliness", env):
                run_target("litellm", llm + "/v1/chat/completions", "fast")
                run_target("litellm-stream", llm + "/v1/chat/completions", "fast", stream=True)
            results["_meta"] = {"litellm_version": litellm_version()}  # type: ignore[dict-item]
    results["_meta"] = {**results.get("_meta", {}), "load_1m_after": os.getloadavg()[0], "cpus": os.cpu_count()}  # type: ignore[dict-item]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    if not args.dialects_only:
        print(report(results))
    print(dialect_report(results["_dialects"]))  # type: ignore[arg-type]
    shutil.rmtree(work, ignore_errors=True)


DIALECTS: dict[str, tuple[str, dict[str, object]]] = {
    "chat": ("/v1/chat/completions", {"model": "fast", "messages": MESSAGES, "max_tokens": 64}),
    "messages": ("/v1/messages", {"model": "fast", "messages": MESSAGES, "max_tokens": 64}),
    "responses": ("/v1/responses", {"model": "fast", "input": MESSAGES[0]["content"], "max_output_tokens": 64}),
}


def dialect_rounds(gw: str, rounds: int, seconds: int, work: Path) -> dict[str, object]:
    """/v1/messages and /v1/responses against chat completions, one connection, in round-robin rounds on one gateway
    process: each round runs every endpoint (whole and streamed) for ``seconds``, in an order rotated per round, and
    each endpoint's p50 is compared with chat's of the same round. Background load then falls on both sides of every
    difference alike; the median over rounds of the per-round differences is the result."""
    targets = [(name, stream) for stream in (False, True) for name in DIALECTS]
    for name, (path, body) in DIALECTS.items():  # warm-up
        wrk(gw + path, body, 1, 1, work)
        wrk(gw + path, {**body, "stream": True}, 1, 1, work)
    runs: list[dict[str, dict[str, float]]] = []
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        run: dict[str, dict[str, float]] = {}
        for name, stream in order:
            path, body = DIALECTS[name]
            res = wrk(gw + path, {**body, "stream": True} if stream else body, 1, seconds, work)
            assert res["errors"] == 0, (name, stream, res)
            run[name + ("-stream" if stream else "")] = res
        runs.append(run)
        print(f"round {r + 1}", json.dumps({k: v["p50_ms"] for k, v in run.items()}), flush=True)
    summary: dict[str, dict[str, float]] = {}
    for key in runs[0]:
        base = "chat-stream" if key.endswith("-stream") else "chat"
        diffs = sorted(run[key]["p50_ms"] - run[base]["p50_ms"] for run in runs)
        summary[key] = {"p50_ms": statistics.median(run[key]["p50_ms"] for run in runs),
                        "p99_ms": statistics.median(run[key]["p99_ms"] for run in runs),
                        "vs_chat_median_ms": statistics.median(diffs), "vs_chat_min_ms": diffs[0], "vs_chat_max_ms": diffs[-1]}
    return {"rounds": rounds, "seconds": seconds, "summary": summary, "runs": runs}


def dialect_report(dialects: dict[str, object]) -> str:
    """The per-round differences against chat completions, as a table."""
    summary: dict[str, dict[str, float]] = dialects["summary"]  # type: ignore[assignment]
    lines = [f"{dialects['rounds']} interleaved rounds of {dialects['seconds']} s per endpoint",
             "| endpoint | p50 ms (median) | vs chat, median of per-round differences ms | min / max ms | p99 ms (median) |",
             "|---|---|---|---|---|"]
    for key, s in summary.items():
        lines.append(f"| {key} | {s['p50_ms']:.3f} | {s['vs_chat_median_ms']:+.3f} | {s['vs_chat_min_ms']:+.3f} / "
                     f"{s['vs_chat_max_ms']:+.3f} | {s['p99_ms']:.3f} |")
    return "\n".join(lines)


def report(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["| target | p50 ms | p99 ms | added p50 ms | added p99 ms | best req/s (errors 0) |", "|---|---|---|---|---|---|"]
    for name, res in results.items():
        if name.startswith("_"):
            continue
        base = results["direct-stream" if name.endswith("stream") else "direct"]["latency"]
        lat = res["latency"]
        ok = [r["rps"] for k, r in res.items() if k.startswith("c") and r["errors"] == 0]
        best = f"{max(ok):.0f}" if ok else "-"
        lines.append(f"| {name} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | {lat['p50_ms'] - base['p50_ms']:.3f} | "
                     f"{lat['p99_ms'] - base['p99_ms']:.3f} | {best} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
