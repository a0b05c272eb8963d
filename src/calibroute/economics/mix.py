"""Traffic mixes: which share of tokens goes to which portfolio model, measured or stated.

A mix comes from the router's own output (``calibroute route --input IN --output OUT.jsonl``:
one decision per line with ``task_class`` and ``model``), or is written inline as
``SIMPLE=0.5,REASONING=0.2`` (classes go to their route's first model) or ``model=share``.
Shares are of requests; the planner treats them as shares of tokens.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..config import TASK_CLASSES, Portfolio
from ..errors import InputError
from .planner import Scenario, blended_usd_per_mtok


@dataclass(frozen=True)
class Mix:
    shares: dict[str, float]  # portfolio model -> share of traffic (sums to 1)
    classes: dict[str, float]  # task class -> share, when known
    source: str


def _normalised(counts: dict[str, float], what: str) -> dict[str, float]:
    total = sum(counts.values())
    if total <= 0 or any(v < 0 for v in counts.values()):
        raise InputError(f"mix {what}: shares must be non-negative and not all zero")
    return {k: v / total for k, v in counts.items()}


def mix_from_jsonl(path: Path, portfolio: Portfolio) -> Mix:
    """Count the router's decisions per model and per class."""
    models: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the mix: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), str):
            raise InputError(f"{path}:{lineno}: expected a routing decision with 'model' and 'task_class'")
        portfolio.model(obj["model"])  # unknown model -> UnknownModelError naming the portfolio's models
        models[obj["model"]] += 1
        classes[str(obj.get("task_class", "unknown"))] += 1
    if not models:
        raise InputError(f"{path}: no routing decisions in the file")
    return Mix(_normalised(dict(models), str(path)), _normalised(dict(classes), str(path)), f"{path} ({sum(models.values())} decisions)")


def mix_from_spec(spec: str, portfolio: Portfolio) -> Mix:
    """Parse ``NAME=share,...`` where NAME is a task class or a portfolio model."""
    models: dict[str, float] = defaultdict(float)
    classes: dict[str, float] = defaultdict(float)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or share < 0:
            raise InputError(f"mix {part!r}: expected NAME=share, e.g. SIMPLE=0.5")
        if name.upper() in TASK_CLASSES:
            classes[name.upper()] += share
            models[portfolio.routes[name.upper()].models[0]] += share  # type: ignore[index]
        else:
            models[portfolio.model(name).name] += share
    if not models:
        raise InputError("empty --mix")
    return Mix(_normalised(dict(models), spec), _normalised(classes, spec) if classes else {}, "inline --mix")


def load_mix(value: str, portfolio: Portfolio) -> Mix:
    """A path to router output if it exists (or ends in .jsonl), else an inline spec."""
    path = Path(value)
    if path.suffix == ".jsonl" or path.exists():
        return mix_from_jsonl(path, portfolio)
    return mix_from_spec(value, portfolio)


def routing_scenarios(mix: Mix, portfolio: Portfolio, input_share: float) -> list[Scenario]:
    """Baseline: all traffic on the portfolio's largest model. Routed: the mix at portfolio prices."""
    def price(name: str) -> float:
        spec = portfolio.model(name)
        return blended_usd_per_mtok(spec.input_usd_per_mtok, spec.output_usd_per_mtok, input_share)

    largest = portfolio.largest_model.name
    routed = sum(share * price(name) for name, share in mix.shares.items())
    detail = ", ".join(f"{name} {share:.0%}" for name, share in sorted(mix.shares.items(), key=lambda kv: -kv[1]))
    return [
        Scenario(f"all traffic on {largest}", price(largest), "no routing (the largest model)"),
        Scenario("calibrated routing", routed, f"{detail} — from {mix.source}"),
    ]

