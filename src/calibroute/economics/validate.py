"""Check the roofline against measured public throughput (``data/validation.yaml``)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from importlib import resources

import yaml
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ArtifactError
from .catalog import Catalog, Cited, Precision, load_catalog
from .roofline import Deployment, Efficiency, Workload, estimate
from .speculative import parse_speculation


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    gpu: str
    gpus: int = Field(gt=0)
    precision: Precision
    kv_precision: Precision | None = None
    isl: int = Field(gt=0)
    osl: int = Field(gt=0)
    concurrency: int | None = Field(default=None, gt=0)
    min_user_tps: float | None = Field(default=None, gt=0)
    layout: Literal["auto", "tp", "dp"] = "auto"
    speculative: str | None = Field(default=None, description="e.g. mtp:3 (draft tokens[:acceptance])")
    measured: float = Field(gt=0, description="output tokens/s of the whole deployment")
    ref: str
    split: Literal["fit", "holdout", "superseded"] = Field(
        description="fit: sets a fitted constant; holdout: a test only; superseded: software since replaced, shown but not scored"
    )
    engine: str = ""
    quoted: str = Field(default="", description="the figure as the source gives it, when it is converted")
    note: str = ""


@dataclass(frozen=True)
class CaseResult:
    case: Case
    source: Cited
    predicted: float
    concurrency: int
    family: str = ""  # model family (llama, deepseek, qwen3, gpt-oss ...): error bands are per family
    kind: str = ""  # dense or moe

    @property
    def error(self) -> float:
        """Signed relative error (predicted - measured) / measured."""
        return (self.predicted - self.case.measured) / self.case.measured

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.case.name,
            "model": self.case.model,
            "gpu": self.case.gpu,
            "gpus": self.case.gpus,
            "predicted": round(self.predicted, 1),
            "measured": self.case.measured,
            "error": round(self.error, 4),
            "concurrency": self.concurrency,
            "split": self.case.split,
            "engine": self.case.engine,
            "family": self.family,
            "kind": self.kind,
            "source": f"{self.source.source} [{self.source.label}, {self.source.date}]",
            "note": self.case.note,
        }


def default_kv_precision(precision: str) -> str:
    """Serving stacks keep the KV cache in BF16 for BF16 weights and in FP8 for FP8/FP4 weights."""
    return "bf16" if precision == "bf16" else "fp8"


def load_cases() -> tuple[list[Case], dict[str, Cited]]:
    text = resources.files("calibroute.economics").joinpath("data", "validation.yaml").read_text("utf-8")
    try:
        data = yaml.safe_load(text)
        sources = {k: Cited.model_validate(v) for k, v in data["sources"].items()}
        cases = [Case.model_validate(c) for c in data["cases"]]
    except (ValidationError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ArtifactError(f"economics validation.yaml is invalid: {exc}") from None
    missing = sorted({c.ref for c in cases} - set(sources))
    if missing:
        raise ArtifactError(f"economics validation.yaml: unknown source refs {', '.join(missing)}")
    return cases, sources


def run_case(case: Case, catalog: Catalog, eff: Efficiency) -> tuple[float, int]:
    dep = Deployment(
        model=catalog.model(case.model),
        gpu=catalog.gpu(case.gpu),
        precision=case.precision,
        kv_precision=case.kv_precision or default_kv_precision(case.precision),
        gpus=case.gpus,
        layout=case.layout,
        speculation=parse_speculation(case.speculative),
    )
    est = estimate(dep, Workload(case.isl, case.osl), eff, concurrency=case.concurrency, min_user_tps=case.min_user_tps)
    return est.tokens_per_s, est.concurrency


def validate(eff: Efficiency | None = None) -> list[CaseResult]:
    eff = eff or Efficiency()
    catalog = load_catalog()
    cases, sources = load_cases()
    results = []
    for case in cases:
        predicted, batch = run_case(case, catalog, eff)
        model = catalog.model(case.model)
        results.append(CaseResult(case, sources[case.ref], predicted, batch, model.family, model.kind))
    return results


def median_abs_error(results: list[CaseResult]) -> float:
    return statistics.median(abs(r.error) for r in results) if results else float("nan")


def summary(results: list[CaseResult]) -> dict[str, dict[str, float]]:
    """Median and worst absolute error by kind (dense / MoE) and split (fit / holdout)."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("dense", "moe"):
        for split in ("fit", "holdout", "all"):
            rows = [r for r in results if r.kind == kind and r.case.split != "superseded" and split in ("all", r.case.split)]
            if rows:
                errs = [abs(r.error) for r in rows]
                out[f"{kind}/{split}"] = {"cases": len(rows), "median": statistics.median(errs), "worst": max(errs)}
    return out
