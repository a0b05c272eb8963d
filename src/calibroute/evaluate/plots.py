"""PNG plots and CSV curves for an EvalReport (matplotlib, headless Agg backend)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import InputError
from .report import EvalReport


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def write_csvs(report: EvalReport, out_dir: Path) -> list[Path]:
    """One CSV of every curve (strategy, point, cost, quality) plus RouteLLM's share curves."""
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = out_dir / f"{_slug(report.dataset)}-curves.csv"
    with curves.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["strategy", "kind", "point", "cost_usd_per_prompt" if report.basis == "usd" else "strong_call_share", "quality"])
        for name, res in report.results.items():
            for i, (c, q) in enumerate(res.curve.points):
                w.writerow([name, res.curve.kind, i, f"{c:.10g}", f"{q:.6f}"])
    pairs = out_dir / f"{_slug(report.dataset)}-strong-share.csv"
    with pairs.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["strategy", "strong_share", "quality"])
        for name, res in report.results.items():
            if res.curve.pair_share is not None and res.curve.pair_quality is not None:
                for s, q in zip(res.curve.pair_share, res.curve.pair_quality):
                    w.writerow([name, f"{s:.6f}", f"{q:.6f}"])
    return [curves, pairs]


def write_plots(report: EvalReport, out_dir: Path) -> list[Path]:
    """cost-quality curves with the Pareto front, and quality vs % strong calls for the pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create: {exc.strerror}") from None
    paths = []
    fig, ax = plt.subplots(figsize=(9, 6))
    for name, res in report.results.items():
        pts = res.curve.points
        if res.curve.kind == "single":
            ax.scatter(pts[:, 0], pts[:, 1], marker="s", s=28, label=None, color="grey")
            ax.annotate(name.removeprefix("always:").split("/")[-1], pts[0], fontsize=7, xytext=(3, 3), textcoords="offset points")
        else:
            style = "-" if res.curve.kind == "router" else "--"
            name = f"{name} (upper bound)" if res.curve.kind == "bound" else name
            ax.plot(pts[:, 0], pts[:, 1], style, marker=".", markersize=3, label=name)
    ax.plot(report.pareto[:, 0], report.pareto[:, 1], color="black", linewidth=2.5, alpha=0.25, label="Pareto front (excl. bounds)")
    ax.axhline(0.95 * report.best_quality, color="red", linestyle=":", linewidth=1, label="95% of best single model")
    if report.basis == "usd":
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per prompt (USD, log scale)")
    else:  # score-only data: a weak call costs 0, so no log scale
        ax.set_xlabel("share of strong-model calls (score-only data: no dollar costs)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report.dataset}: cost vs quality ({report.n_prompts} prompts, router={report.router})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out_dir / f"{_slug(report.dataset)}-cost-quality.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, res in report.results.items():
        if res.curve.pair_share is not None and res.curve.pair_quality is not None:
            ax.plot(100 * res.curve.pair_share, res.curve.pair_quality, marker=".", label=f"{name} (APGR {res.apgr:.3f})")
    strong = report.results.get(f"always:{report.strong}")
    weak = report.results.get(f"always:{report.weak}")
    if strong and weak:
        ax.axhline(strong.curve.points[0, 1], color="red", linestyle="--", label=report.strong)
        ax.axhline(weak.curve.points[0, 1], color="grey", linestyle="--", label=report.weak)
    ax.set_xlabel("strong model calls (%)")
    ax.set_ylabel("quality")
    ax.set_title(f"{report.dataset}: quality vs % strong calls (RouteLLM view)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{_slug(report.dataset)}-strong-share.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    return paths
