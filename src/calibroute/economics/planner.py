"""From a roofline estimate to money: $ per million tokens, GPUs for a load, monthly spend and savings."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from .bands import Band, band_for
from .catalog import Catalog, check_precision, load_catalog, nearest_hint
from .roofline import Deployment, Efficiency, Estimate, Workload, estimate, max_concurrency
from .speculative import parse_speculation
from .validate import default_kv_precision

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class CostRequest:
    model: str
    gpu: str
    precision: str = "fp8"
    kv_precision: str | None = None
    input_tokens: int = 1000
    output_tokens: int = 1000
    concurrency: int | None = None
    min_user_tps: float | None = None
    gpus: int | None = None
    utilization: float = 0.7
    price: str = "typical"
    speculative: str | None = None  # none | mtp[:DRAFT_TOKENS[:ACCEPTANCE]] (speculative.py)


@dataclass(frozen=True)
class Cost:
    """One deployment's throughput and unit costs; input/output costs split by the GPU time each takes."""

    model: str
    gpu: str
    precision: str
    estimate: Estimate
    usd_per_gpu_hour: float
    utilization: float
    usd_per_mtok_input: float
    usd_per_mtok_output: float
    band: Band

    def to_dict(self) -> dict[str, Any]:
        est = self.estimate.to_dict()
        details = est.pop("details")
        return {
            "model": self.model,
            "gpu": self.gpu,
            "precision": self.precision,
            **est,
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "utilization": self.utilization,
            "usd_per_mtok_input": self.usd_per_mtok_input,
            "usd_per_mtok_output": self.usd_per_mtok_output,
            "throughput_band": self.band.to_dict(),
            "details": details,
        }


def candidate_gpu_counts(domain_size: int) -> list[int]:
    """Powers of two up to the NVLink domain, plus the whole domain (e.g. 72 for NVL72)."""
    counts = [2**i for i in range(int(math.log2(domain_size)) + 1)]
    return counts if counts[-1] == domain_size else [*counts, domain_size]


MIN_SERVING_BATCH = 32  # without --concurrency, an instance must hold at least this many sequences


def smallest_fit(dep: Deployment, work: Workload, eff: Efficiency, concurrency: int | None) -> int | None:
    """Fewest GPUs within one scale-up domain holding the weights and the KV cache of the batch.

    Without a concurrency, the KV cache of ``MIN_SERVING_BATCH`` sequences must fit: an instance that
    holds the weights and a handful of sequences serves at many times the cost per token of one GPU more.
    """
    need = concurrency or MIN_SERVING_BATCH
    for n in candidate_gpu_counts(dep.gpu.domain_size):
        trial = replace(dep, gpus=n)
        if max_concurrency(trial, work, replace(eff, max_batch_per_gpu=10**9)) >= need:
            return n
    return None


def _no_fit_message(req: CostRequest, catalog: Catalog, work: Workload, eff: Efficiency) -> str:
    """Name the GPUs and precisions on which this model would fit."""
    model = catalog.model(req.model)
    options = []
    for gpu in catalog.gpus.values():
        for precision in ("bf16", "fp8", "fp4"):
            dep = Deployment(model, gpu, precision, req.kv_precision or default_kv_precision(precision), 1)
            if smallest_fit(dep, work, eff, req.concurrency) is not None:
                options.append(f"{gpu.id}/{precision}")
                break
    where = f"; it fits on: {', '.join(options)}" if options else ""
    batch = req.concurrency or MIN_SERVING_BATCH
    return (
        f"{req.model} at {req.precision} with the KV cache of {batch} sequences of {work.peak_context} tokens "
        f"does not fit in one {req.gpu} NVLink domain{where}"
    )


def cost(req: CostRequest, eff: Efficiency | None = None, catalog: Catalog | None = None) -> Cost:
    """Throughput and $/Mtok of serving ``req.model`` on ``req.gpu``; raises InputError if it cannot fit."""
    eff = eff or Efficiency()
    catalog = catalog or load_catalog()
    model, gpu = catalog.model(req.model), catalog.gpu(req.gpu)
    precision = check_precision(req.precision)
    kv_precision = check_precision(req.kv_precision) if req.kv_precision else default_kv_precision(precision)
    if not 0 < req.utilization <= 1:
        raise InputError("utilization must be in (0, 1]")
    if req.input_tokens < 1 or req.output_tokens < 1:
        raise InputError("input and output tokens per request must be at least 1")
    if req.price not in ("low", "typical", "high"):
        raise InputError(f"unknown price tier {req.price!r} (valid: low, typical, high)")
    work = Workload(req.input_tokens, req.output_tokens)
    if work.peak_context > model.context:
        raise InputError(f"{model.id} has a {model.context}-token context; {work.peak_context} requested")
    spec = parse_speculation(req.speculative)
    dep = Deployment(model, gpu, precision, kv_precision, req.gpus or 1, speculation=spec)
    gpus = req.gpus or smallest_fit(dep, work, eff, req.concurrency)
    if gpus is None:
        raise InputError(_no_fit_message(req, catalog, work, eff))
    dep = replace(dep, gpus=gpus)
    est = estimate(dep, work, eff, concurrency=req.concurrency, min_user_tps=req.min_user_tps)
    if not est.fits:
        raise InputError(_no_fit_message(req, catalog, work, eff) + f" (with --gpus {gpus})")
    hourly = getattr(gpu.usd_per_gpu_hour, req.price)
    usd_per_s = gpus * hourly / 3600 / req.utilization
    return Cost(
        model=model.id,
        gpu=gpu.id,
        precision=precision,
        estimate=est,
        usd_per_gpu_hour=hourly,
        utilization=req.utilization,
        usd_per_mtok_input=usd_per_s * est.prefill_s_per_input_token * 1e6,
        usd_per_mtok_output=usd_per_s * est.decode_s_per_output_token * 1e6,
        band=band_for(model),
    )


def blended_usd_per_mtok(input_usd: float, output_usd: float, input_share: float) -> float:
    """Price of a million tokens of which ``input_share`` are input tokens."""
    return input_share * input_usd + (1 - input_share) * output_usd


@dataclass(frozen=True)
class Scenario:
    """A way to serve the workload: a per-token price, or whole instances with a capacity (self-hosting)."""

    name: str
    usd_per_mtok: float
    detail: str = ""
    instance_usd_per_month: float | None = None
    instance_tokens_per_month: float | None = None  # at the planned utilisation
    band: Band | None = None  # throughput error band of a self-hosted row (bands.py)

    def instances(self, tokens_per_month: float, throughput_scale: float = 1.0) -> int | None:
        if self.instance_tokens_per_month is None:
            return None
        return max(1, math.ceil(tokens_per_month / (self.instance_tokens_per_month * throughput_scale)))

    def spend(self, tokens_per_month: float, throughput_scale: float = 1.0) -> tuple[float, float]:
        """Monthly and annual spend; self-hosting pays for whole instances, however idle.

        ``throughput_scale``: real throughput relative to the model's (the error band's edges)."""
        count = self.instances(tokens_per_month, throughput_scale)
        if count is not None and self.instance_usd_per_month is not None:
            monthly = count * self.instance_usd_per_month
        else:
            monthly = tokens_per_month / 1e6 * self.usd_per_mtok
        return monthly, 12 * monthly


def hosting_scenario(c: Cost, input_share: float) -> Scenario:
    """A self-hosted deployment as a plan row: blended $/Mtok and whole-instance capacity."""
    est = c.estimate
    per_month = (est.tokens_per_s + est.input_tokens_per_s) * 3600 * HOURS_PER_MONTH * c.utilization
    return Scenario(
        name=f"{c.model} on {c.gpu} ({c.precision})",
        usd_per_mtok=blended_usd_per_mtok(c.usd_per_mtok_input, c.usd_per_mtok_output, input_share),
        detail=f"{est.gpus} GPU(s)/instance, {est.tokens_per_s_per_gpu:,.0f} out tok/s/GPU",
        instance_usd_per_month=est.gpus * c.usd_per_gpu_hour * HOURS_PER_MONTH,
        instance_tokens_per_month=per_month,
        band=c.band,
    )


def api_scenario(price_id: str, input_share: float) -> Scenario:
    """A hosted API at its catalog list price."""
    prices = load_catalog().prices
    if price_id not in prices:
        raise InputError(f"unknown API price id {price_id!r}{nearest_hint(price_id, list(prices))}")
    listed = prices[price_id]
    return Scenario(f"API {price_id}", blended_usd_per_mtok(listed.input, listed.output, input_share), f"list price {listed.date}")


@dataclass(frozen=True)
class PlanRow:
    name: str
    detail: str
    usd_per_mtok: float  # effective: spend / tokens (whole instances included)
    instances: int | None
    monthly_usd: float
    annual_usd: float
    annual_savings_usd: float
    savings_share: float
    band: Band | None = None
    annual_range_usd: tuple[float, float] | None = None  # annual spend at the band's edges (whole instances)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["band"] = self.band.to_dict() if self.band else None
        out["annual_range_usd"] = list(self.annual_range_usd) if self.annual_range_usd else None
        return out


def plan(scenarios: list[Scenario], tokens_per_month: float) -> list[PlanRow]:
    """Spend of each scenario and its savings against the first (the baseline)."""
    if tokens_per_month <= 0:
        raise InputError("--tokens-per-month must be positive")
    if not scenarios:
        raise InputError("nothing to plan: give --mix and/or --model with --gpu")
    _, base_annual = scenarios[0].spend(tokens_per_month)
    rows = []
    for sc in scenarios:
        monthly, annual = sc.spend(tokens_per_month)
        saved = base_annual - annual
        effective = monthly / (tokens_per_month / 1e6)
        share = saved / base_annual if base_annual else 0.0
        spread = None
        if sc.band is not None and sc.instance_tokens_per_month is not None:
            spread = (sc.spend(tokens_per_month, 1 + sc.band.high)[1], sc.spend(tokens_per_month, max(1 + sc.band.low, 0.05))[1])
        rows.append(
            PlanRow(sc.name, sc.detail, effective, sc.instances(tokens_per_month), monthly, annual, saved, share, sc.band, spread)
        )
    return rows


@dataclass(frozen=True)
class CurvePoint:
    concurrency: int
    user_tokens_per_s: float
    tokens_per_s_per_gpu: float
    usd_per_mtok_output: float


def interactivity_curve(req: CostRequest, eff: Efficiency | None = None, points: int = 14) -> list[CurvePoint]:
    """Throughput per GPU against per-user speed as the batch grows from 1 to the largest that fits."""
    top = cost(req, eff)
    batches = sorted({max(1, round(top.estimate.max_concurrency ** (i / (points - 1)))) for i in range(points)})
    curve = []
    for batch in batches:
        c = cost(replace(req, concurrency=batch, gpus=top.estimate.gpus, min_user_tps=None), eff)
        est = c.estimate
        curve.append(CurvePoint(batch, est.user_tokens_per_s, est.tokens_per_s_per_gpu, c.usd_per_mtok_output))
    return curve
