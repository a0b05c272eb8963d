"""PNG plots for ``calibroute economics compare`` (matplotlib, headless, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

from .planner import Cost, CurvePoint


def plot_compare(rows: list[Cost], curves: dict[str, list[CurvePoint]], out: Path) -> Path:
    """Left: tokens/s per GPU against tokens/s per user; right: $ per 1M output tokens per deployment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for label, curve in curves.items():
        left.plot([p.user_tokens_per_s for p in curve], [p.tokens_per_s_per_gpu for p in curve], marker="o", ms=3, label=label)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("output tokens/s per user")
    left.set_ylabel("output tokens/s per GPU")
    left.set_title("throughput vs interactivity (roofline)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    labels = [f"{r.model}\n{r.gpu} x{r.estimate.gpus} {r.precision}" for r in rows]
    ys = list(range(len(rows)))
    right.barh([y - 0.2 for y in ys], [r.usd_per_mtok_output for r in rows], height=0.4, color="tab:blue", label="output")
    right.barh([y + 0.2 for y in ys], [r.usd_per_mtok_input for r in rows], height=0.4, color="tab:orange", label="input")
    right.set_yticks(ys, labels)
    right.set_xlabel("USD per 1M tokens (at the chosen batch and utilisation)")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    right.legend()
    right.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
