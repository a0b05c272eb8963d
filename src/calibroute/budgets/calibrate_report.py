"""Files written by ``calibroute calibrate budgets --out DIR``: curves (PNG), a settings table and flips (CSV).

matplotlib is imported inside ``plot_ladder`` (Agg backend), so importing this module is cheap.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict
from pathlib import Path

from ..errors import InputError
from .calibrate import Flip, Pick, flips
from .ladder import Ladder


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def plot_ladder(ladder: Ladder, pick: Pick, ladder_flips: list[Flip], path: Path) -> None:
    """Accuracy (95 % bootstrap interval) vs mean tokens, with items lost/gained between settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = pick.settings
    x = [s.mean_tokens for s in stats]
    y = [s.accuracy for s in stats]
    err = [[s.accuracy - s.ci_low for s in stats], [s.ci_high - s.accuracy for s in stats]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    try:
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color="tab:blue", label="accuracy (95% CI)")
        if stats[0].abstained is not None:
            ax.plot(x, [s.incorrect for s in stats], "s--", color="tab:red", alpha=0.6, label="incorrect")
            ax.plot(x, [s.abstained for s in stats], "^--", color="tab:gray", alpha=0.6, label="abstained")
        for s in stats:
            ax.annotate(s.setting, (s.mean_tokens, s.accuracy), textcoords="offset points", xytext=(4, 6), fontsize=8)
        chosen = next(s for s in stats if s.setting == pick.setting)
        ax.scatter([chosen.mean_tokens], [chosen.accuracy], s=180, facecolors="none", edgecolors="green", linewidths=2, label="pick", zorder=5)
        if min(x) > 0 and max(x) / min(x) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("mean tokens used per item")
        ax.set_ylabel("share of items")
        flag = ", INVERSE SCALING" if pick.inverse_scaling else ""
        ax.set_title(f"{ladder.label} (n={ladder.n_items}): pick {pick.setting}{flag}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        labels = [f"{f.from_setting}\n-> {f.to_setting}" for f in ladder_flips]
        pos = range(len(ladder_flips))
        bx.bar([p - 0.2 for p in pos], [f.gained for f in ladder_flips], width=0.4, color="tab:green", label="gained (wrong -> right)")
        bx.bar([p + 0.2 for p in pos], [f.lost for f in ladder_flips], width=0.4, color="tab:red", label="lost (right -> wrong or abstained)")
        bx.set_xticks(list(pos), labels, fontsize=7)
        bx.set_ylabel("items")
        bx.set_title("items flipping between settings", fontsize=10)
        bx.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def write_report(ladders: list[Ladder], picks: list[Pick], out: Path, plots: bool = True) -> list[Path]:
    """Write one PNG per ladder, ``settings.csv`` and ``flips.csv`` into ``out``; return the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create output folder: {exc.strerror or exc}") from None
    written: list[Path] = []
    all_flips: list[Flip] = []
    for ladder, pick in zip(ladders, picks, strict=True):
        ladder_flips = flips(ladder)
        all_flips += ladder_flips
        if plots:
            name = "_".join(_slug(p) for p in (ladder.model, ladder.benchmark, ladder.task or "") if p)
            path = out / f"curve_{name}.png"
            plot_ladder(ladder, pick, ladder_flips, path)
            written.append(path)
    settings_path = out / "settings.csv"
    with settings_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        head = ["model", "benchmark", "task", "n_items", "picked", "best"]
        fields = list(asdict(picks[0].settings[0])) if picks else []
        writer.writerow(head + fields)
        for pick in picks:
            for s in pick.settings:
                row = [pick.model, pick.benchmark, pick.task or "", pick.n_items, s.setting == pick.setting, s.setting == pick.best_setting]
                writer.writerow(row + ["" if v is None else v for v in asdict(s).values()])
    flips_path = out / "flips.csv"
    with flips_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        fields = list(Flip.__dataclass_fields__)
        writer.writerow(fields + ["net"])
        for f in all_flips:
            writer.writerow(["" if v is None else v for v in asdict(f).values()] + [f.net])
    return [*written, settings_path, flips_path]
