"""What ``calibroute calibrate routing`` prints and writes: the headline split, the repeated splits, the portfolio."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..evaluate.routing_calibration import (
    DEFAULT_STRONG_SHARE,
    RoutingData,
    SplitResult,
    batch_scorer,
    check_levels,
    prepare,
    random_split,
    repeated_splits,
    run_split,
    summarise,
)
from .evaluate import _prices, load_source
from .files import write_text

err_console = Console(stderr=True)
ALWAYS_STRONG_THRESHOLD = 1.0  # written when nothing is certified: p < 1 escalates every request


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cost(x: float, basis: str) -> str:
    return f"${x:.3g}" if basis == "usd" else f"{100 * x:.0f}% strong"


def render_split(data: RoutingData, r: SplitResult, eps: float, con: Console) -> None:
    """The calibrated threshold next to the uncalibrated default and always-strongest, on the test prompts."""
    pair = f"{r.weak} -> {r.strong}" if r.weak else f"always {r.strong}"
    table = Table(title=f"{data.name}: test split; quality target >= {1 - eps:.0%} of {r.strong}; calibrated: {pair}")
    for col in ("routing", "threshold", "escalated", "quality", "vs strongest", "cost/prompt", "saving", "target met"):
        table.add_column(col, justify="left" if col == "routing" else "right", no_wrap=True)
    thr = "-" if r.threshold is None else f"{r.threshold:.3f}"
    rows = [
        ("calibrated" if r.weak else "calibrated (always strongest)", thr, _pct(r.escalated_test), r.quality, r.cost, r.held),
        (f"default strong_share {DEFAULT_STRONG_SHARE} ({r.default_weak})", f"{data.default_threshold:.3f}",
         _pct(r.default_escalated_test), r.default_quality, r.default_cost, r.default_held),
        ("always strongest", "-", "100.0%", r.strong_quality, r.strong_cost, True),
    ]
    for name, threshold, esc, q, c, met in rows:
        saving = 1 - c / r.strong_cost if r.strong_cost else 0.0
        table.add_row(name, threshold, esc, f"{q:.3f}", _pct(q / r.strong_quality if r.strong_quality else 1.0),
                      _cost(c, data.basis), _pct(saving), "yes" if met else "NO")
    con.print(table)


def render_summary(s: dict[str, float], delta: float, con: Console) -> None:
    held = round(s["held_rate"] * s["splits"])
    verdict = "holds" if s["held_rate"] >= 1 - delta else "FAILS"
    con.print(
        f"over {int(s['splits'])} random splits: guarantee held in {held} ({_pct(s['held_rate'])}; "
        f"required >= {_pct(1 - delta)}: {verdict}); default strong_share {DEFAULT_STRONG_SHARE} met the same "
        f"target in {_pct(s['default_held_rate'])}"
    )
    con.print(
        f"mean test cost saving: {_pct(s['saving_vs_strong'])} vs always-strongest, {_pct(s['saving_vs_default'])} vs the "
        f"default (which saves {_pct(s['default_saving_vs_strong'])} at quality {_pct(s['default_quality_ratio'])}); "
        f"realised quality {_pct(s['quality_ratio'])} of strongest; no threshold certified in "
        f"{_pct(s['always_strong_rate'])} of splits"
    )


def run_routing(source: str, eps: float, delta: float, n_splits: int, calibration_share: float, seed: int,
                strong: str | None, weak: str | None, prices: Path | None, config: Path | None,
                write: Path | None, json_out: Path | None) -> None:
    check_levels(eps, delta)
    from ..classify import load_difficulty

    out = load_source(source, _prices(prices, config))
    estimator = load_difficulty()
    con = Console(width=None if sys.stdout.isatty() else 160)
    with err_console.status(f"scoring {out.n_prompts} prompts with the difficulty estimator"):
        data = prepare(out, batch_scorer(estimator), estimator.threshold_for_share(DEFAULT_STRONG_SHARE), strong, weak)
    cal, test = random_split(len(data.p_weak), calibration_share, seed)
    head = run_split(data, cal, test, eps, delta, strong, weak)
    con.print(f"[bold]{data.name}[/]: {len(data.p_weak)} prompts ({len(cal)} calibrate, {len(test)} test); "
              f"eps={eps:g} delta={delta:g}; calibrated: routing.escalation.threshold on the shipped difficulty "
              "estimator's P(cheaper model suffices), escalating below it (the router's own score)")
    render_split(data, head, eps, con)
    if head.weak is None and head.candidates == 0:
        con.print(f"{head.strong} is the strongest model and also the cheapest: always use it, no routing needed")
    elif head.weak is None:
        con.print(f"no threshold certified on {len(cal)} calibration prompts at eps={eps:g}, delta={delta:g}: "
                  f"always use {head.strong} (threshold {ALWAYS_STRONG_THRESHOLD}); more calibration data or a "
                  "larger eps would allow savings")
    results = [head]
    if n_splits > 1:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("repeated splits", total=n_splits)
            results = repeated_splits(data, eps, delta, n_splits, calibration_share, seed, strong, weak,
                                      tick=lambda: progress.advance(task))
        render_summary(summarise(results), delta, con)
    for note in data.notes:
        con.print(f"note: {note}", markup=False, highlight=False, style="dim")
    if json_out is not None:
        payload = {"source": source, "epsilon": eps, "delta": delta, "calibration_share": calibration_share,
                   "seed": seed, "prompts": len(data.p_weak), "cost_basis": data.basis,
                   "default_threshold": data.default_threshold, "notes": data.notes,
                   "summary": summarise(results), "splits": [r.to_dict() for r in results]}
        write_text(json_out, json.dumps(payload, indent=1) + "\n")
        con.print(f"wrote {json_out}")
    if write is not None:
        _write_portfolio(write, head, con)


def _write_portfolio(path: Path, r: SplitResult, con: Console) -> None:
    from ..portfolio_edit import write_threshold

    threshold = r.threshold if r.threshold is not None else ALWAYS_STRONG_THRESHOLD
    command = "calibroute " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    portfolio = write_threshold(path, threshold, command)
    con.print(f"wrote routing.escalation.threshold = {threshold:.6g} to {path}")
    names = {m.name for m in portfolio.models}
    pair = [m.split("@")[0] for m in (r.strong, r.weak) if m]
    if not set(pair) <= names:
        con.print(f"warning: the calibrated pair ({', '.join(pair)}) is not among {path}'s models: the guarantee holds "
                  "for routes that escalate between those models", style="yellow")
