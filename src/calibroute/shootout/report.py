"""What a shoot-out found: a summary per model x budget (x task), and the cost-accuracy plot.

Accuracy is the mean score over every planned call that ran, failed calls counting 0 (a call
that failed did not answer); its 95 % interval is Wilson's score interval, which stays
inside 0..1 and is honest at small n and at accuracies near 0 or 1. Dollars come from the
portfolio prices times the tokens the backend reported; the judge's dollars are separate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ..outcomes import OutcomeRow
from .store import CallRecord

ALL = "all"


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SummaryRow:
    task: str
    model: str
    budget: str
    n: int
    errors: int
    accuracy: float
    ci_low: float
    ci_high: float
    usd_per_1k: float
    usd_per_correct: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    p50_ttft_s: float | None
    tokens_per_s: float | None
    mean_output_tokens: float
    judge_usd: float

    @property
    def label(self) -> str:
        return f"{self.model}@{self.budget}"


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _row(task: str, model: str, budget: str, recs: list[CallRecord]) -> SummaryRow:
    n = len(recs)
    scores = [r.score if r.status == "ok" and r.score is not None else 0.0 for r in recs]
    correct = float(sum(scores))
    cost = sum(r.cost_usd for r in recs)
    ok = [r for r in recs if r.status == "ok"]
    lat = [r.latency_s for r in ok if r.latency_s is not None]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    tps = [r.tokens_per_s for r in ok if r.tokens_per_s is not None]
    lo, hi = wilson(correct, n)
    return SummaryRow(
        task=task, model=model, budget=budget, n=n, errors=n - len(ok), accuracy=correct / n if n else 0.0,
        ci_low=lo, ci_high=hi, usd_per_1k=1000 * cost / n if n else 0.0,
        usd_per_correct=cost / correct if correct > 0 else None,
        p50_latency_s=_pct(lat, 50), p95_latency_s=_pct(lat, 95), p50_ttft_s=_pct(ttft, 50),
        tokens_per_s=_pct(tps, 50), mean_output_tokens=float(np.mean([r.output_tokens for r in ok])) if ok else 0.0,
        judge_usd=sum(r.judge_cost_usd for r in recs),
    )


def summarise(records: Iterable[CallRecord]) -> list[SummaryRow]:
    """One row per model x budget over all tasks, then (with several tasks) one per task as well."""
    recs = list(records)
    groups: dict[tuple[str, str, str], list[CallRecord]] = {}
    for r in recs:
        groups.setdefault((ALL, r.model, r.budget), []).append(r)
    tasks = sorted({r.task for r in recs})
    if len(tasks) > 1:
        for r in recs:
            groups.setdefault((r.task, r.model, r.budget), []).append(r)
    order = {t: i for i, t in enumerate([ALL, *tasks])}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], k[2]))
    return [_row(*k, groups[k]) for k in keys]


def pareto_front(rows: list[SummaryRow]) -> list[SummaryRow]:
    """Rows no other row beats on both cost (lower) and accuracy (higher), cheapest first; exact ties all stay."""
    front: list[SummaryRow] = []
    for row in sorted(rows, key=lambda r: (r.usd_per_1k, -r.accuracy)):
        tie = bool(front) and (row.usd_per_1k, row.accuracy) == (front[-1].usd_per_1k, front[-1].accuracy)
        if not front or row.accuracy > front[-1].accuracy or tie:
            front.append(row)
    return front


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def table(rows: list[SummaryRow], title: str = "shoot-out") -> Table:
    t = Table(title=title)
    for col in ("task", "model@budget", "n", "err", "accuracy", "95% CI", "$/1k req", "$/correct", "p50 s", "p95 s",
                "TTFT p50", "tok/s", "out tok"):
        t.add_column(col, justify="left" if col in ("task", "model@budget") else "right", no_wrap=True)
    fronts = {task: {r.label for r in pareto_front([x for x in rows if x.task == task])} for task in {r.task for r in rows}}
    for r in rows:
        star = " *" if r.label in fronts[r.task] else ""
        t.add_row(r.task, r.label + star, str(r.n), str(r.errors), f"{r.accuracy:.3f}", f"{r.ci_low:.2f}-{r.ci_high:.2f}",
                  _f(r.usd_per_1k, ".4g"), _f(r.usd_per_correct, ".3g"), _f(r.p50_latency_s, ".2f"),
                  _f(r.p95_latency_s, ".2f"), _f(r.p50_ttft_s, ".2f"), _f(r.tokens_per_s, ".1f"),
                  f"{r.mean_output_tokens:.0f}")
    return t


def to_json(rows: list[SummaryRow]) -> list[dict[str, Any]]:
    return [asdict(r) | {"pareto": r.label in {p.label for p in pareto_front([x for x in rows if x.task == r.task])}}
            for r in rows]


def write_plot(rows: list[SummaryRow], path: Path) -> Path:
    """Accuracy (with its interval) against $ per 1,000 requests, one panel per task, Pareto front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in dict.fromkeys(r.task for r in rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        panel = [r for r in rows if r.task == task]
        for r in panel:
            ax.errorbar(r.usd_per_1k, r.accuracy, yerr=[[r.accuracy - r.ci_low], [r.ci_high - r.accuracy]], fmt="o",
                        capsize=3)
            ax.annotate(r.label, (r.usd_per_1k, r.accuracy), textcoords="offset points", xytext=(5, 5), fontsize=8)
        front = pareto_front(panel)
        ax.plot([r.usd_per_1k for r in front], [r.accuracy for r in front], "k--", lw=1, label="Pareto front")
        if all(r.usd_per_1k > 0 for r in panel) and max(r.usd_per_1k for r in panel) > 10 * min(r.usd_per_1k for r in panel):
            ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("$ per 1,000 requests")
        ax.set_ylabel("accuracy (95% Wilson CI)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def outcome_rows(records: Iterable[CallRecord]) -> list[OutcomeRow]:
    """The long outcomes format, ``budget`` as the setting: what ``eval`` and ``calibrate budgets`` read.

    A failed call is a row with score 0 and its ``error``, so no planned call silently disappears.
    """
    rows = []
    for r in records:
        ok = r.status == "ok"
        rows.append(OutcomeRow(
            prompt_id=r.task_id, prompt=r.prompt, model=r.model, budget=r.budget,
            score=float(r.score or 0.0) if ok else 0.0, cost_usd=r.cost_usd, input_tokens=r.input_tokens,
            output_tokens=r.output_tokens, reasoning_tokens=r.reasoning_tokens, latency_s=r.latency_s, ttft_s=r.ttft_s,
            task=r.task, error=r.error or r.judge_error,
            extra={"budget_tokens": r.budget_tokens, "cached_tokens": r.cached_tokens or None, "tokens_per_s": r.tokens_per_s,
                   "grader": r.grader, "extracted": r.extracted, "judge_model": r.judge_model,
                   "judge_cost_usd": r.judge_cost_usd or None, "attempts": r.attempts},
        ))
    return rows
