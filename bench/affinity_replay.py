"""Conversation affinity on replayed agent transcripts, through the real gateway: model switches per conversation
and routed cost (cached input at each model's cached price), with and without ``--affinity``.

The transcripts come from bench/agent_transcripts.py (tau-bench-shaped airline and retail episodes,
SWE-bench-shaped coding episodes; ``--transcripts FILE`` replays others of that shape). Every request an agent
would send (the whole conversation up to
each user or tool message, with the tools, ``prompt_cache_key`` = the episode's user) goes, in order, to
``calibroute serve`` with the built-in portfolio (or ``--portfolio``), its backends replaced by one local server
that answers for every model and keeps a prompt cache per model, as vLLM's prefix cache or a provider's does:
a request's cached tokens are those of its longest message-aligned prefix that model has already seen. Its
answers do not depend on the model (same length for the same request), so the two runs differ only in routing.
Costs come from the gateway's own ledger rows.

    python bench/affinity_replay.py [--portfolio FILE] [--out bench/out/affinity_replay.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_transcripts import generate, load, requests_of
from gateway_latency import ROOT, free_port, process

from calibroute.config import load_portfolio
from calibroute.gateway.affinity import Affinity


class CachingBackend:
    """Answers for every model; remembers, per model, every prompt prefix it has processed."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def usage(self, body: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.sha256(json.dumps(body.get("tools") or [], sort_keys=True).encode())
        tokens = len(json.dumps(body.get("tools") or [])) // 4
        cached = 0
        with self.lock:
            seen = self.seen.setdefault(str(body.get("model")), set())
            hit = True
            for msg in body.get("messages") or []:
                digest.update(json.dumps(msg, sort_keys=True).encode())
                key = digest.hexdigest()
                hit = hit and key in seen
                seen.add(key)
                tokens += max(1, len(json.dumps(msg)) // 4)
                if hit:
                    cached = tokens
        return {"prompt_tokens": tokens, "prompt_tokens_details": {"cached_tokens": cached}}

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            usage = self.usage(body)
            last = json.dumps(body["messages"][-1], sort_keys=True)
            words = 20 + int(hashlib.sha256(last.encode()).hexdigest(), 16) % 150  # the same answer size on any model
            text = "<think>\nchecking the policy\n</think>\n\n" + "word " * words
            usage.update(completion_tokens=words + 6, total_tokens=usage["prompt_tokens"] + words + 6)
            if not body.get("stream"):
                return JSONResponse({"id": "chatcmpl-r", "object": "chat.completion", "created": 0, "model": body["model"],
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}], "usage": usage})

            def chunk(**extra: Any) -> bytes:
                return b"data: " + json.dumps({"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 0,
                                                "model": body["model"], **extra}).encode() + b"\n\n"

            events = [chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]),
                      chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                      chunk(choices=[], usage=usage), b"data: [DONE]\n\n"]
            return StreamingResponse(iter(events), media_type="text/event-stream")

        async def models(request: Request) -> Response:
            return JSONResponse({"object": "list", "data": []})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def serve_backend(backend: CachingBackend, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(backend.app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    return server


def local_portfolio(source: str | None, backend_url: str, work: Path) -> Path:
    """The portfolio with every model's backend pointed at the caching server (model names kept)."""
    data = yaml.safe_load(Path(source).read_text()) if source else yaml.safe_load(
        (ROOT / "src" / "calibroute" / "data" / "default_portfolio.yaml").read_text())
    for model in data["models"]:
        model["backend"] = {"base_url": backend_url + "/v1", "served_model": model["name"]}
    path = work / "portfolio.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# The runs compared: no affinity; affinity climbing one step at a time (to the routed model); affinity as shipped
# (a climb goes to the route's highest rung within twice the routed model's turn cost); escalations only (never down).
RUNS = {"without": [], "with_step": ["--affinity", "--no-affinity-jump"], "with": ["--affinity"],
        "escalations_only": ["--affinity", "--no-affinity-release"]}


def replay(episodes: list[dict[str, Any]], source: str | None, work: Path, name: str) -> dict[str, Any]:
    """One run (``name``: a key of ``RUNS``) on a fresh backend (empty caches) and a fresh ledger."""
    backend, backend_port, gw_port = CachingBackend(), free_port(), free_port()
    server = serve_backend(backend, backend_port)
    portfolio = local_portfolio(source, f"http://127.0.0.1:{backend_port}", work)
    ledger = work / f"ledger-{name}.db"
    serve = [str(Path(sys.executable).parent / "calibroute"), "serve", "--config", str(portfolio), "--port", str(gw_port),
             "--ledger", str(ledger), "--ledger-journal", "off", "--log-level", "warning",
             *RUNS[name]]
    gw = f"http://127.0.0.1:{gw_port}"
    conversations: list[list[str]] = []
    try:
        with process(serve, gw + "/healthz"), httpx.Client(base_url=gw, timeout=60) as client:
            for ep in episodes:
                ids = []
                for messages in requests_of(ep):
                    body = {"model": "auto", "messages": messages, "tools": ep["tools"],
                            "prompt_cache_key": ep["task"]["user_id"]}
                    resp = client.post("/v1/chat/completions", json=body)
                    resp.raise_for_status()
                    ids.append(resp.headers["x-request-id"])
                conversations.append(ids)
    finally:
        server.should_exit = True
    with sqlite3.connect(ledger) as db:
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT request_id, model, cost_usd, prompt_tokens, cached_tokens, completion_tokens, affinity_saved_usd, "
            "route_rule FROM requests")}
    return {"conversations": conversations, "rows": rows}


def summarize(run: dict[str, Any], rank: Affinity) -> dict[str, Any]:
    portfolio = rank.portfolio
    switches, upward_only, full_price = [], True, 0.0
    for ids in run["conversations"]:
        models = [run["rows"][i][0] for i in ids]
        moves = [(a, b) for a, b in pairwise(models) if a != b]
        switches.append(len(moves))
        upward_only = upward_only and all(rank.rank(b) > rank.rank(a) for a, b in moves)
    rows = run["rows"].values()
    for model, _, prompt, _, completion, _, _ in rows:
        full_price += portfolio.model(model).cost_usd(prompt, completion)
    prompt_total = sum(r[2] for r in rows)
    cached_total = sum(r[3] for r in rows)
    return {
        "conversations": len(switches), "requests": len(run["rows"]),
        "switches_mean": round(sum(switches) / len(switches), 3), "switches_max": max(switches),
        "conversations_over_1_switch": sum(s > 1 for s in switches), "all_switches_upward": upward_only,
        "cost_usd": round(sum(r[1] for r in rows), 6), "cost_at_full_input_price_usd": round(full_price, 6),
        "cached_share": round(cached_total / prompt_total, 3) if prompt_total else 0.0,
        "affinity_saved_usd": round(sum(r[5] for r in rows), 6),
        "kept_by_affinity": sum(r[6] == "affinity" for r in rows),
        "models": {m: sum(r[0] == m for r in rows) for m in sorted({r[0] for r in rows})},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", default=None, help="portfolio YAML (default: the built-in one)")
    ap.add_argument("--transcripts", type=Path, default=None, help="JSONL of episodes (default: bench/agent_transcripts.py's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "affinity_replay.json")
    args = ap.parse_args()
    episodes = load(args.transcripts) if args.transcripts else generate()
    work = Path(tempfile.mkdtemp(prefix="calibroute-affinity-"))
    rank = Affinity(load_portfolio(local_portfolio(args.portfolio, "http://127.0.0.1:1", work)))
    result: dict[str, Any] = {}
    for name in RUNS:
        result[name] = summarize(replay(episodes, args.portfolio, work, name), rank)
        print(json.dumps(result), flush=True)
    without = result["without"]["cost_usd"]
    for name in ("with_step", "with", "escalations_only"):
        result[f"{name}_cost_change_pct"] = round(100 * (result[name]["cost_usd"] - without) / without, 2) if without else None
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
