"""Conversation affinity on replayed agent conversations: model switches per conversation and routed cost,
with and without affinity.

The conversations are written here in the shape of a tool-using agent benchmark episode (tau-bench style: an
agent system prompt, a user task, assistant tool calls, tool results, user follow-ups of varied kinds). Each turn
sends the whole conversation so far, as agents do, and is routed by the shipped router (or ``--portfolio``);
cost is the router's estimate for the turn on its model (input at the model's price plus the route's output
budget), with no prompt-cache discount (the portfolio has no cached price yet), so it shows what staying on a
pricier model costs, not what caching saves.

    python bench/affinity_replay.py [--portfolio FILE]
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from typing import Any

from calibroute.config import load_portfolio
from calibroute.gateway.affinity import Affinity, answers_a_tool_call, conversation_key
from calibroute.router import Router

SYSTEM = "You are a customer-service agent for an airline. Use the tools to look up and change bookings."
FOLLOW_UPS = [
    ["thanks!", "Can you prove that the refund of 3 legs at $120 minus a 15% fee is $306?", "ok, book it"],
    ["Write a short apology poem for the delay.", "great", "what is my seat?"],
    ["If I fly 3 legs a week for 52 weeks, how many legs is that? Show the arithmetic.", "thanks", "bye"],
    ["Summarize my booking in one line.", "Compare the two fares and explain which is cheaper and why, step by step.", "ok"],
]
TASKS = ["I need to change my flight ABC123 to Friday.", "Cancel reservation XYZ789 and tell me the refund.",
         "Add a checked bag to booking QWE456.", "Which seat do I have on LMN321?"]


def conversations() -> list[list[dict[str, Any]]]:
    """Each conversation as the list of requests an agent sends (each the whole conversation so far)."""
    out = []
    for i, task in enumerate(TASKS):
        for j, follow_ups in enumerate(FOLLOW_UPS):
            history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
            turns = [list(history)]
            call = {"id": f"call_{i}{j}", "type": "function", "function": {"name": "get_booking", "arguments": "{}"}}
            history += [{"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"booking": task[-7:], "legs": 3})}]
            turns.append(list(history))
            for text in follow_ups:
                history += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": text}]
                turns.append(list(history))
            out.append(turns)
    return out


def replay(router: Router, affinity: Affinity | None) -> dict[str, float]:
    switches, cost, turns = [], 0.0, 0
    for conv in conversations():
        models = []
        for messages in conv:
            decision = router.decide(messages=messages)
            if affinity is not None:
                body = {"messages": messages}
                decision = affinity.apply(conversation_key(body), decision, tool_turn=answers_a_tool_call(body))
            models.append(decision.model)
            cost += decision.estimated_cost_usd
            turns += 1
        switches.append(sum(a != b for a, b in pairwise(models)))
    return {"conversations": len(switches), "turns": turns, "switches_mean": sum(switches) / len(switches),
            "switches_max": max(switches), "cost_usd": round(cost, 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", default=None, help="portfolio YAML (default: the built-in one)")
    args = ap.parse_args()
    portfolio = load_portfolio(args.portfolio)
    router = Router(portfolio)
    result = {"without": replay(router, None), "with": replay(router, Affinity(portfolio))}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
