"""How sure a throughput figure is: an error band from the validation residuals of the same model family.

For each scored validation case (fit and holdout; superseded software excluded) the residual is
measured / predicted - 1: how far reality sat from the model. A figure's band is the 10th to 90th
percentile of those residuals for its model family (deepseek, qwen3, llama, gpt-oss ...), or, with
fewer than ``MIN_CASES`` cases in the family, of every case of the same kind (MoE or dense).
Applied to a throughput it reads "measured runs came out between -x% and +y% of the model".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .catalog import Model

MIN_CASES = 3


@dataclass(frozen=True)
class Band:
    low: float  # fractional: -0.2 = measured throughput 20% below the prediction
    high: float
    cases: int
    basis: str  # the family or kind the residuals come from

    def label(self) -> str:
        return f"{self.low:+.0%}..{self.high:+.0%} ({self.basis}, {self.cases} cases)"

    def to_dict(self) -> dict[str, object]:
        return {"low": round(self.low, 4), "high": round(self.high, 4), "cases": self.cases, "basis": self.basis}


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile of a non-empty list."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@lru_cache(maxsize=1)
def _residuals() -> tuple[tuple[str, str, float], ...]:
    """(family, kind, measured/predicted - 1) of every scored validation case, computed once per process."""
    from .validate import validate  # validate imports the roofline; keep this module import-light

    return tuple(
        (r.family, r.kind, r.case.measured / r.predicted - 1) for r in validate() if r.case.split != "superseded"
    )


def band_for(model: Model) -> Band:
    """The residual band of ``model``'s family, or of its kind when the family has too few cases."""
    rows = _residuals()
    family = [res for fam, _, res in rows if fam == model.family]
    if len(family) >= MIN_CASES:
        values, basis = family, model.family
    else:
        values, basis = [res for _, kind, res in rows if kind == model.kind], f"all {model.kind} models"
    if not values:
        return Band(0.0, 0.0, 0, "no measured cases")
    return Band(_percentile(values, 0.1), _percentile(values, 0.9), len(values), basis)
