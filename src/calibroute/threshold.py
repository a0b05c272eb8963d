"""Calibrate the escalation threshold on your own traffic, as RouteLLM calibrates its router.

The difficulty estimator gives P(the route's cheaper model suffices) per prompt; escalation
happens below a threshold. A threshold only means something against a traffic mix, so this
module replays a reference prompt set through the real router and picks the threshold that
meets a target: a share of escalated (strong-model) calls, or a cap on the average estimated
cost per request. Costs are the Decision's upper-bound estimates (prompt tokens plus the
route budget's max output tokens), the same numbers ``calibroute route`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .classify.base import classify_turn
from .conversation import CHARS_PER_TOKEN, Turn, clip_for_classifier, turn_from_messages
from .errors import InputError
from .policy import decide, ladder_thresholds

if TYPE_CHECKING:  # the router imports this module at run time, never the other way round
    from .router import Router

NEVER, ALWAYS = -1.0, 2.0  # thresholds outside [0, 1]: never / always escalate


def read_reference_prompts(path: str | Path) -> list[Turn]:
    """Prompts from a JSONL file: one ``{"prompt": ...}`` or ``{"messages": [...]}`` per line.

    A reference set must be clean, so any bad line is an error naming the file and line.
    """
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    turns: list[Turn] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}:{lineno}: not a JSON line ({exc})") from None
        try:
            if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
                turn = Turn(obj["prompt"])
            elif isinstance(obj, dict) and "messages" in obj:
                turn = turn_from_messages(obj["messages"])
            else:
                raise InputError("expected an object with a string 'prompt' or a 'messages' list")
        except InputError as exc:
            raise InputError(f"{p}:{lineno}: {exc}") from None
        if turn.text.strip():
            turns.append(turn)
    if not turns:
        raise InputError(f"{p}: no prompts")
    return turns


@dataclass(frozen=True)
class TrafficReplay:
    """Each reference prompt's P(cheaper suffices) and its cost on every rung of its route's ladder."""

    p_weak: np.ndarray  # sorted ascending
    cost_weak: np.ndarray  # aligned with p_weak
    cost_strong: np.ndarray  # the top of the route's ladder; equals cost_weak where there is nothing to escalate to
    rung_costs: np.ndarray | None = None  # n x R: cost on rung k (padded with the top rung); None = two rungs
    n_rungs: np.ndarray | None = None  # models in each prompt's route ladder

    @property
    def n(self) -> int:
        return int(self.p_weak.size)

    def escalated_at(self, threshold: float) -> int:
        """How many prompts escalate at ``threshold`` (p < threshold and the route can escalate)."""
        below = int(np.searchsorted(self.p_weak, threshold, side="left"))
        return int(np.count_nonzero(self.cost_strong[:below] != self.cost_weak[:below]))

    def mean_cost_at(self, threshold: float) -> float:
        below = int(np.searchsorted(self.p_weak, threshold, side="left"))
        extra = float(np.sum(self.cost_strong[:below] - self.cost_weak[:below]))
        return (float(np.sum(self.cost_weak)) + extra) / self.n

    def threshold_for_share(self, strong_share: float) -> float:
        """The threshold below which ``strong_share`` of this traffic's scores fall."""
        if not 0.0 <= strong_share <= 1.0:
            raise InputError(f"strong_share must be in [0, 1], got {strong_share}")
        k = int(round(strong_share * self.n))
        return self._cut(k)

    def threshold_for_cost(self, max_avg_cost_usd: float) -> float:
        """The highest threshold whose average estimated cost per request stays within the cap."""
        floor = float(np.mean(self.cost_weak))
        if max_avg_cost_usd < floor:
            raise InputError(
                f"cost cap ${max_avg_cost_usd:.6f}/request is below the never-escalate cost ${floor:.6f} on this traffic"
            )
        running = np.cumsum(self.cost_strong - self.cost_weak)  # extra cost of escalating the k easiest-to-fail
        k = int(np.searchsorted(running, (max_avg_cost_usd - floor) * self.n, side="right"))
        return self._cut(k)

    def share_below(self, threshold: float) -> float:
        """The share of this traffic whose P(cheaper suffices) is below ``threshold``."""
        return float(np.searchsorted(self.p_weak, threshold, side="left")) / self.n

    def rungs_at_level(self, level: float) -> np.ndarray:
        """Each prompt's rung when every route climbs its ladder at escalation ``level`` (``Router``'s rule)."""
        sizes = self.n_rungs if self.n_rungs is not None else np.where(self.cost_strong != self.cost_weak, 2, 1)
        rung = np.zeros(self.n, dtype=np.int64)
        for size in np.unique(sizes):
            sel = sizes == size
            for t in ladder_thresholds(level, int(size), self.threshold_for_share):
                rung[sel] += self.p_weak[sel] < t
        return rung

    def mean_cost_at_level(self, level: float) -> float:
        costs = self.rung_costs if self.rung_costs is not None else np.c_[self.cost_weak, self.cost_strong]
        return float(np.mean(costs[np.arange(self.n), self.rungs_at_level(level)]))

    def escalated_share_at_level(self, level: float) -> float:
        """The share of prompts that leave their route's first model at ``level``."""
        return float(np.mean(self.rungs_at_level(level) > 0))

    def level_for_cost(self, max_avg_cost_usd: float) -> float:
        """The highest escalation level whose mean estimated cost stays within the cap (bisection; cost rises with level)."""
        floor = float(np.mean(self.cost_weak))
        if max_avg_cost_usd < floor:
            raise InputError(
                f"cost cap ${max_avg_cost_usd:.6f}/request is below the never-escalate cost ${floor:.6f} on this traffic"
            )
        if self.mean_cost_at_level(1.0) <= max_avg_cost_usd:
            return 1.0
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.mean_cost_at_level(mid) <= max_avg_cost_usd else (lo, mid)
        return lo

    def _cut(self, k: int) -> float:
        """A threshold that escalates exactly the ``k`` lowest scores (ties break towards fewer)."""
        if k <= 0:
            return 0.0
        if k >= self.n:
            return 1.0
        return float((self.p_weak[k - 1] + self.p_weak[k]) / 2)


def replay(router: Router, texts: Sequence[str | Turn]) -> TrafficReplay:
    """Run each prompt through the router's estimators once and price both outcomes."""
    if not texts:
        raise InputError("reference prompt set is empty")
    portfolio = router.portfolio
    rows: list[tuple[float, float, float, int]] = []
    rung_costs: list[list[float]] = []
    for item in texts:
        turn = item if isinstance(item, Turn) else Turn(item)
        text = turn.text
        clipped = clip_for_classifier(text)
        classification = classify_turn(router.classifier, clipped, turn.context)
        p = router.difficulty.p_weak_suffices(clipped)
        tokens = max(1, len(text) // CHARS_PER_TOKEN)
        weak = decide(portfolio, classification, p, NEVER, tokens)
        n = len(portfolio.routes[weak.task_class.value].ladder)
        forced = [{weak.task_class.value: (ALWAYS,) * k + (NEVER,) * (n - 1 - k)} for k in range(1, n)]
        costs = [weak.estimated_cost_usd, *(decide(portfolio, classification, p, f, tokens).estimated_cost_usd for f in forced)]
        rows.append((p, costs[0], costs[-1], len(rows)))
        rung_costs.append(costs)
    rows.sort()
    order = [r[3] for r in rows]
    width = max(len(c) for c in rung_costs)
    padded = np.array([rung_costs[i] + [rung_costs[i][-1]] * (width - len(rung_costs[i])) for i in order])
    data = np.array([r[:3] for r in rows], dtype=float)
    return TrafficReplay(p_weak=data[:, 0], cost_weak=data[:, 1], cost_strong=data[:, 2], rung_costs=padded,
                         n_rungs=np.array([len(rung_costs[i]) for i in order]))
