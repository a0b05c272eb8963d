"""``calibroute config check|show|threshold``: validate a portfolio file, print the effective one,
calibrate its escalation threshold on your own traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console

from ..config import load_portfolio
from ..errors import InputError

config_app = typer.Typer(no_args_is_help=True, help="Validate and show portfolio configs.")


@config_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="portfolio YAML file")]) -> None:
    """Exit 0 if FILE is a valid portfolio; otherwise print where and why it is not, exit 2."""
    portfolio = load_portfolio(file)
    typer.echo(f"{file}: ok ({len(portfolio.models)} models, {len(portfolio.routes)} routes)")


@config_app.command("show")
def show(
    file: Annotated[Optional[Path], typer.Argument(help="portfolio YAML (default: $CALIBROUTE_CONFIG or built-in)")] = None,
) -> None:
    """Print the effective portfolio as YAML, defaults filled in."""
    import os

    portfolio = load_portfolio(file if file is not None else (os.environ.get("CALIBROUTE_CONFIG") or None))
    data = portfolio.model_dump(mode="json")
    Console().print(yaml.safe_dump(data, sort_keys=False), markup=False, highlight=False)


@config_app.command("threshold")
def threshold(
    prompts: Annotated[Path, typer.Option("--prompts", "-p", help="JSONL of {prompt} or {messages}: your traffic")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG", help="portfolio YAML")] = None,
    strong_share: Annotated[Optional[float], typer.Option(help="target share of escalated calls, 0..1")] = None,
    max_avg_cost: Annotated[Optional[float], typer.Option(help="cap on mean estimated $ per request")] = None,
    write: Annotated[Optional[Path], typer.Option(help="write the portfolio with this threshold pinned (with ladders: this level on this traffic)")] = None,
) -> None:
    """Pick the escalation threshold that meets a target on your traffic (as RouteLLM's calibrate_threshold)."""
    from rich.table import Table

    from ..policy import ladder_thresholds
    from ..router import Router
    from ..threshold import read_reference_prompts, replay

    if strong_share is not None and max_avg_cost is not None:
        raise InputError("give --strong-share or --max-avg-cost, not both")
    if strong_share is not None and not 0.0 <= strong_share <= 1.0:
        raise InputError(f"--strong-share must be in [0, 1], got {strong_share}")
    router = Router.from_config(str(config) if config else None)
    traffic = replay(router, read_reference_prompts(prompts))
    if max_avg_cost is not None:
        level, target = traffic.level_for_cost(max_avg_cost), f"mean est. cost <= ${max_avg_cost:g}/request"
    else:
        level = strong_share if strong_share is not None else router.portfolio.routing.escalation.strong_share or 0.0
        target = f"{level:.0%} of traffic below the threshold"
    chosen = traffic.threshold_for_share(level)
    ladders = {c: r.ladder for c, r in router.portfolio.routes.items() if len(r.ladder) > 2}

    typer.echo(f"{prompts}: {traffic.n} prompts; escalation when P(cheaper suffices) < threshold"
               + ("; ladders climb one rung per threshold" if ladders else ""))
    table = Table()
    for col in ("level", "threshold", "escalated", "mean est. $/request", "vs never escalating"):
        table.add_column(col, justify="right")
    never = traffic.mean_cost_at_level(0.0)
    for lv in sorted({*(s / 10 for s in range(11)), level}):
        cost = traffic.mean_cost_at_level(lv)
        mark = " <- target" if lv == level else ""
        table.add_row(f"{lv:.3f}{mark}", f"{traffic.threshold_for_share(lv):.4f}", f"{traffic.escalated_share_at_level(lv):.1%}",
                      f"${cost:.6f}", f"{cost / never:.2f}x" if never else "-")
    Console().print(table)
    typer.echo(f"threshold {chosen:.4f} ({target}); current config: {router.threshold}")
    for cls, ladder in ladders.items():
        cuts = ladder_thresholds(level, len(ladder), traffic.threshold_for_share)
        rungs = ", ".join(f"{m} if P < {t:.4f}" for m, t in zip(ladder[1:], cuts))
        typer.echo(f"{cls} ladder: {ladder[0]}; {rungs}")
    if write is not None:
        data = router.portfolio.model_dump(mode="json", exclude_none=True)
        data["routing"]["escalation"] = {"threshold": round(chosen, 6)}
        if ladders:  # every rung is calibrated on this traffic at this level when the router starts
            data["routing"]["escalation"] = {"strong_share": level, "reference_prompts": str(prompts.resolve())}
        header = f"# escalation threshold calibrated on {prompts} ({traffic.n} prompts): {target}\n"
        write.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        load_portfolio(write)  # what we wrote must load
        typer.echo(f"wrote {write}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
