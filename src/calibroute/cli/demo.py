"""``calibroute demo``: route a built-in sample of requests and show what calibrated compute saves.

Runs on embedded defaults only: the built-in portfolio and the shipped estimators.
No API key, no server, no model call.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..config import TASK_CLASSES, Budget, RoutingSettings
from ..router import Router
from ..types import Decision


def _short(budget: Budget) -> str:
    """A compact budget for narrow terminals: '16k think 12k high', '512 no-think'."""
    k = lambda n: f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)  # noqa: E731
    if not budget.thinking:
        return f"{k(budget.max_output_tokens)} no-think"
    think = f" think {k(budget.thinking_budget_tokens)}" if budget.thinking_budget_tokens is not None else " think"
    return f"{k(budget.max_output_tokens)}{think}{' ' + budget.effort if budget.effort else ''}"


def _class_cell(d: Decision, routing: RoutingSettings) -> str:
    """The routed class, or for a low-confidence fallback the class it was unsure of and that class's threshold."""
    if d.rules[0] == "low_confidence" and d.scores:
        top = max(d.scores, key=d.scores.__getitem__)
        return f"GENERAL (unsure: {top} {d.confidence:.2f} < {routing.threshold_for(top):.2f})"
    return f"{d.task_class.value} ({d.confidence:.2f})"


def _thresholds(routing: RoutingSettings) -> str:
    """'0.7', or the per-class thresholds: 'SIMPLE 0.75, REASONING 0.55, ...'."""
    if isinstance(routing.min_confidence, float):
        return f"{routing.min_confidence}"
    return ", ".join(f"{c} {routing.threshold_for(c):.2f}" for c in TASK_CLASSES if c != "GENERAL")


def demo(config: Annotated[Optional[str], typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG")] = None) -> None:
    """Route sample prompts with the built-in portfolio; compare cost with 'always the largest model'."""
    router = Router.from_config(config)
    largest = router.portfolio.largest_model
    text = resources.files("calibroute.data").joinpath("sample_prompts.jsonl").read_text("utf-8")
    table = Table(title="calibroute demo: calibrated routing of sample requests (no model is called)")
    table.add_column("prompt", no_wrap=True, max_width=40)
    for col in ("class (conf)", "model", "budget", "est. $"):
        table.add_column(col, no_wrap=True)
    routed = baseline = 0.0
    for line in text.splitlines():
        item = json.loads(line)
        d = router.decide(prompt=item["prompt"])
        prompt = item["prompt"] if len(item["prompt"]) <= 40 else item["prompt"][:39] + "…"
        table.add_row(prompt, _class_cell(d, router.portfolio.routing), d.model, _short(d.budget), f"{d.estimated_cost_usd:.4f}")
        routed += d.estimated_cost_usd
        # Baseline: the largest model with the same token budget: isolates the saving of model choice.
        baseline += largest.cost_usd(d.input_tokens_est, d.budget.max_output_tokens)
    console = Console(width=max(Console().width, 140))  # the table is unreadable when folded
    console.print(table)
    console.print(
        "Rows marked 'unsure' fell back to the safe GENERAL route: the classifier's confidence was below "
        f"routing.min_confidence ({_thresholds(router.portfolio.routing)})."
    )
    console.print(
        f"Upper-bound cost of these {len(text.splitlines())} requests: calibrated ${routed:.4f} vs "
        f"always {largest.name} with the same budgets ${baseline:.4f} ({1 - routed / baseline:.0%} less)."
    )
    console.print("Next: `calibroute route \"your prompt\"`, `calibroute serve`, `calibroute eval`, `calibroute economics cost`.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
