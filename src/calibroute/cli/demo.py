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

from ..router import Router


def demo(config: Annotated[Optional[str], typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG")] = None) -> None:
    """Route sample prompts with the built-in portfolio; compare cost with 'always the largest model'."""
    router = Router.from_config(config)
    largest = router.portfolio.largest_model
    text = resources.files("calibroute.data").joinpath("sample_prompts.jsonl").read_text("utf-8")
    table = Table(title="calibroute demo: calibrated routing of sample requests (no model is called)")
    for col in ("prompt", "class", "conf", "model", "budget", "est. $"):
        table.add_column(col, overflow="fold", max_width=48 if col == "prompt" else None)
    routed = baseline = 0.0
    for line in text.splitlines():
        item = json.loads(line)
        d = router.decide(prompt=item["prompt"])
        prompt = item["prompt"] if len(item["prompt"]) < 70 else item["prompt"][:67] + "..."
        table.add_row(prompt, d.task_class.value, f"{d.confidence:.2f}", d.model, d.budget.describe(), f"{d.estimated_cost_usd:.5f}")
        routed += d.estimated_cost_usd
        # Baseline: the largest model with the same token budget: isolates the saving of model choice.
        baseline += largest.cost_usd(d.input_tokens_est, d.budget.max_output_tokens)
    console = Console()
    console.print(table)
    console.print(
        f"Upper-bound cost of these {len(text.splitlines())} requests: calibrated ${routed:.4f} vs "
        f"always {largest.name} with the same budgets ${baseline:.4f} ({1 - routed / baseline:.0%} less)."
    )
    console.print("Next: `calibroute route \"your prompt\"`, `calibroute serve`, `calibroute eval`, `calibroute economics cost`.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
