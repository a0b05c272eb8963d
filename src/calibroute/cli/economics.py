"""``calibroute economics``: cost per token, comparisons, spend plans and the roofline's validation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError

economics_app = typer.Typer(no_args_is_help=True, help="Inference economics: hardware x model -> tokens/s and $/Mtok.")
console = Console(width=None if sys.stdout.isatty() else 160)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="catalog model id, e.g. llama-3.1-70b, deepseek-v3")]
GpuOpt = Annotated[str, typer.Option("--gpu", "-g", help="catalog GPU id: h100, h200, b200, gb200, b300, gb300, rubin, ...")]
PrecisionOpt = Annotated[str, typer.Option("--precision", "-p", help="weights: bf16, fp8 or fp4")]
KvOpt = Annotated[Optional[str], typer.Option("--kv-precision", help="KV cache: bf16 or fp8 (default: bf16 for bf16 weights, else fp8)")]
ContextOpt = Annotated[int, typer.Option("--context", "-c", help="prompt (input) tokens per request")]
OutputOpt = Annotated[int, typer.Option("--output-tokens", help="output tokens per request")]
ConcOpt = Annotated[Optional[int], typer.Option("--concurrency", "-n", help="running batch (default: the largest that fits)")]
GpusOpt = Annotated[Optional[int], typer.Option("--gpus", help="GPUs per instance (default: fewest in one NVLink domain that fit)")]
SpeedOpt = Annotated[Optional[float], typer.Option("--min-user-tps", help="largest batch keeping this many output tokens/s per user")]
UtilOpt = Annotated[float, typer.Option("--utilization", help="average fleet utilisation the GPU-hours are paid at")]
PriceOpt = Annotated[str, typer.Option("--price", help="GPU-hour price tier: low, typical (3-yr rental), high")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
SpecOpt = Annotated[
    Optional[str],
    typer.Option("--speculative", help="speculative decoding: none, mtp, mtp:DRAFT_TOKENS[:ACCEPTANCE] (default acceptance 0.7)"),
]


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _ids(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError("expected a comma-separated list of ids")
    return items


def _unreachable(target: float, reached: float) -> str:
    return (
        f"{target:g} tok/s per user is out of reach: one sequence alone gets {reached:.1f} "
        "(per-step kernel and collective floor); try --speculative mtp"
    )


@economics_app.command("cost")
def cost_cmd(
    model: ModelOpt,
    gpu: GpuOpt,
    precision: PrecisionOpt = "fp8",
    kv_precision: KvOpt = None,
    context: ContextOpt = 1000,
    output_tokens: OutputOpt = 1000,
    concurrency: ConcOpt = None,
    gpus: GpusOpt = None,
    min_user_tps: SpeedOpt = None,
    utilization: UtilOpt = 0.7,
    price: PriceOpt = "typical",
    speculative: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tokens/s and $ per million input/output tokens of one model on one GPU type."""
    from ..economics.planner import CostRequest, cost

    if concurrency is not None and concurrency < 1 or gpus is not None and gpus < 1:
        raise InputError("--concurrency and --gpus must be at least 1")
    req = CostRequest(
        model, gpu, precision, kv_precision, context, output_tokens, concurrency, min_user_tps, gpus, utilization, price, speculative
    )
    result = cost(req)
    if as_json:
        _emit(result.to_dict())
        return
    est = result.estimate
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("deployment", f"{result.model} on {est.gpus}x {result.gpu}, {result.precision} weights"),
        ("memory / GPU", f"weights {est.weights_gb_per_gpu:.1f} GB + KV {est.kv_gb_per_gpu:.1f} GB"),
        ("batch", f"{est.concurrency} running (max that fits: {est.max_concurrency})"),
        ("throughput", f"{est.tokens_per_s:,.0f} output tok/s ({est.tokens_per_s_per_gpu:,.0f} per GPU), {est.input_tokens_per_s:,.0f} input tok/s"),
        ("how sure", f"measured runs of this family came out {result.band.label()} of the model"),
        ("per user", f"{est.user_tokens_per_s:.1f} tok/s; decode step {est.time_per_output_token_ms:.1f} ms ({est.bound}-bound)"),
        ("GPU-hour", f"${result.usd_per_gpu_hour:.2f} at {result.utilization:.0%} utilisation"),
        ("$ / 1M tokens", f"input ${result.usd_per_mtok_input:.3f}, output ${result.usd_per_mtok_output:.3f}"),
    ]
    if min_user_tps is not None and est.user_tokens_per_s < min_user_tps:
        rows.append(("note", _unreachable(min_user_tps, est.user_tokens_per_s)))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@economics_app.command("compare")
def compare_cmd(
    models: Annotated[str, typer.Option("--models", help="comma-separated model ids")] = "llama-3.1-70b,gpt-oss-120b",
    gpus: Annotated[str, typer.Option("--gpus", help="comma-separated GPU ids")] = "h100,b200,gb200,rubin",
    per_instance: Annotated[Optional[int], typer.Option("--gpus-per-instance", help="same GPU count for every pair (default: fewest that fit)")] = None,
    precision: PrecisionOpt = "fp8",
    context: ContextOpt = 1000,
    output_tokens: OutputOpt = 1000,
    min_user_tps: SpeedOpt = None,
    utilization: UtilOpt = 0.7,
    speculative: SpecOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG to write")] = Path("economics-compare.png"),
    as_json: JsonOpt = False,
) -> None:
    """Several models across several GPUs: a table and a PNG (throughput vs interactivity, $/Mtok)."""
    from ..economics.planner import CostRequest, cost, interactivity_curve
    from ..economics.plots import plot_compare

    rows, curves, skipped = [], {}, []
    for m in _ids(models):
        for g in _ids(gpus):
            req = CostRequest(
                m, g, precision, None, context, output_tokens, None, min_user_tps, per_instance, utilization, speculative=speculative
            )
            try:
                rows.append(cost(req))
            except InputError as exc:
                if "does not fit" not in str(exc):
                    raise
                skipped.append(str(exc))
                continue
            curves[f"{m} / {g}"] = interactivity_curve(req)
    if plot is not None and rows:
        plot_compare(rows, curves, plot)
    if as_json:
        _emit({"rows": [r.to_dict() for r in rows], "skipped": skipped, "plot": str(plot) if plot and rows else None})
        return
    table = Table(title=f"{precision}, {context} in / {output_tokens} out per request, {utilization:.0%} utilisation")
    for col in ("model", "gpu", "GPUs", "batch", "tok/s/GPU", "measured vs model", "tok/s/user", "$/Mtok in", "$/Mtok out"):
        table.add_column(col, justify="right" if col not in ("model", "gpu", "measured vs model") else "left")
    for r in rows:
        e = r.estimate
        table.add_row(
            r.model, r.gpu, str(e.gpus), str(e.concurrency), f"{e.tokens_per_s_per_gpu:,.0f}", r.band.label(),
            f"{e.user_tokens_per_s:.1f}", f"{r.usd_per_mtok_input:.3f}", f"{r.usd_per_mtok_output:.3f}",
        )
    console.print(table)
    for msg in skipped:
        console.print(f"skipped: {msg}", style="yellow", markup=False, highlight=False)
    for r in rows:
        if min_user_tps is not None and r.estimate.user_tokens_per_s < min_user_tps:
            note = f"{r.model} / {r.gpu}: {_unreachable(min_user_tps, r.estimate.user_tokens_per_s)}"
            console.print(note, style="yellow", markup=False, highlight=False)
    console.print(
        "measured vs model: 10th-90th percentile of measured/predicted - 1 over the validation cases of the model's "
        "family (calibroute economics validate); $/Mtok moves inversely.", markup=False, highlight=False,
    )
    if plot is not None and rows:
        console.print(f"plot: {plot}", markup=False, highlight=False)


@economics_app.command("plan")
def plan_cmd(
    tokens_per_month: Annotated[float, typer.Option("--tokens-per-month", help="total tokens (input + output) a month")],
    mix: Annotated[Optional[str], typer.Option("--mix", help="router output JSONL (calibroute route -o), or SIMPLE=0.5,REASONING=0.2,...")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", envvar="CALIBROUTE_CONFIG", help="portfolio YAML for --mix prices")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="self-hosted model for a hardware transition")] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="current GPU")] = None,
    to_gpu: Annotated[Optional[str], typer.Option("--to-gpu", help="comma-separated GPUs to move to")] = None,
    precision: PrecisionOpt = "fp8",
    to_precision: Annotated[Optional[str], typer.Option("--to-precision", help="precision on the new GPUs (default: --precision)")] = None,
    gpus_per_instance: Annotated[Optional[int], typer.Option("--gpus-per-instance", help="GPUs per instance (default: fewest that fit)")] = None,
    api: Annotated[Optional[str], typer.Option("--api", help="comma-separated hosted API price ids to include")] = None,
    context: ContextOpt = 1500,
    output_tokens: OutputOpt = 500,
    min_user_tps: SpeedOpt = None,
    utilization: UtilOpt = 0.7,
    speculative: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Monthly and annual spend of a workload and the savings of routing or of a hardware transition."""
    from ..config import load_portfolio
    from ..economics.mix import load_mix, routing_scenarios
    from ..economics.planner import CostRequest, Scenario, api_scenario, cost, hosting_scenario, plan

    input_share = context / (context + output_tokens)
    scenarios: list[Scenario] = []
    if mix is not None:
        portfolio = load_portfolio(config)
        scenarios += routing_scenarios(load_mix(mix, portfolio), portfolio, input_share)
    if model is not None or gpu is not None or to_gpu is not None:
        if model is None or gpu is None:
            raise InputError("a hardware plan needs --model and --gpu (and usually --to-gpu)")
        targets = [(gpu, precision)] + [(g, to_precision or precision) for g in (_ids(to_gpu) if to_gpu else [])]
        for g, p in targets:
            req = CostRequest(
                model, g, p, None, context, output_tokens, None, min_user_tps, gpus_per_instance, utilization, speculative=speculative
            )
            c = cost(req)
            scenarios.append(hosting_scenario(c, input_share))
    if api is not None:
        scenarios += [api_scenario(pid, input_share) for pid in _ids(api)]
    rows = plan(scenarios, tokens_per_month)
    if as_json:
        _emit({"tokens_per_month": tokens_per_month, "input_share": input_share, "rows": [r.to_dict() for r in rows]})
        return
    table = Table(title=f"{tokens_per_month:,.0f} tokens/month, {input_share:.0%} input; savings vs the first row")
    for col in ("scenario", "$/Mtok", "instances", "monthly", "annual", "annual if measured", "annual savings", "detail"):
        table.add_column(col, justify="left" if col in ("scenario", "detail") else "right")
    for r in rows:
        spread = "-" if r.annual_range_usd is None else f"${r.annual_range_usd[0]:,.0f}..${r.annual_range_usd[1]:,.0f}"
        table.add_row(
            r.name, f"{r.usd_per_mtok:.3f}", "-" if r.instances is None else str(r.instances),
            f"${r.monthly_usd:,.0f}", f"${r.annual_usd:,.0f}", spread,
            f"${r.annual_savings_usd:,.0f} ({r.savings_share:.0%})", r.detail,
        )
    console.print(table)
    if any(r.band for r in rows):
        console.print(
            "annual if measured: self-hosted spend if throughput lands at the 10th/90th percentile of measured/predicted "
            "for the model's family (calibroute economics validate).", markup=False, highlight=False,
        )


@economics_app.command("validate")
def validate_cmd(as_json: JsonOpt = False) -> None:
    """Predicted vs measured output tokens/s on public benchmarks, and the median absolute error."""
    from ..economics.validate import median_abs_error, summary, validate

    results = validate()
    scored = [r for r in results if r.case.split != "superseded"]
    median = median_abs_error(scored)
    groups = summary(results)
    if as_json:
        _emit({"median_abs_error": median, "summary": groups, "cases": [r.to_dict() for r in results]})
        return
    table = Table(title="roofline vs measured (output tokens/s of the deployment)")
    for col in ("case", "split", "engine", "GPUs", "batch", "predicted", "measured", "error", "source"):
        table.add_column(col, justify="right" if col in ("GPUs", "batch", "predicted", "measured", "error") else "left")
    for r in results:
        table.add_row(
            r.case.name, r.case.split, r.case.engine, str(r.case.gpus), str(r.concurrency), f"{r.predicted:,.0f}",
            f"{r.case.measured:,.0f}", f"{r.error:+.0%}", f"{r.case.ref} [{r.source.label}]" + (f" — {r.case.note}" if r.case.note else ""),
        )
    console.print(table)
    for key, g in groups.items():
        console.print(f"{key:14} {g['cases']:3.0f} cases: median |error| {g['median']:.1%}, worst {g['worst']:.1%}", markup=False, highlight=False)
    console.print(f"median absolute error: {median:.1%} over {len(scored)} scored cases", markup=False, highlight=False)


@economics_app.command("catalog")
def catalog_cmd(as_json: JsonOpt = False) -> None:
    """List the catalog's GPUs, models and API prices with their sources."""
    from ..economics.catalog import load_catalog

    cat = load_catalog()
    if as_json:
        _emit(
            {
                "version": cat.version,
                "gpus": [g.model_dump() for g in cat.gpus.values()],
                "models": [m.model_dump() for m in cat.models.values()],
                "prices": [p.model_dump() for p in cat.prices.values()],
            }
        )
        return
    gt = Table(title=f"GPUs (catalog {cat.version})")
    for col in ("id", "HBM GB", "TB/s", "BF16/FP8/FP4 TFLOPS", "domain", "$/GPU-h", "label"):
        gt.add_column(col)
    for g in cat.gpus.values():
        rates = "/".join(f"{g.dense_tflops[p]:,.0f}" if p in g.dense_tflops else "-" for p in ("bf16", "fp8", "fp4"))
        gt.add_row(g.id, f"{g.hbm_gb:g}", f"{g.hbm_tbps:g}", rates, str(g.domain_size), f"{g.usd_per_gpu_hour.typical:.2f}",
                   g.spec.label + (" (preliminary)" if g.preliminary else ""))
    console.print(gt)
    mt = Table(title="models")
    for col in ("id", "total B", "active B", "layers", "attention", "experts"):
        mt.add_column(col)
    for m in cat.models.values():
        experts = f"{m.moe.experts} / {m.moe.per_token}" if m.moe else "dense"
        mt.add_row(m.id + (f" ({', '.join(m.aliases)})" if m.aliases else ""), f"{m.total_params_b:g}", f"{m.active_params_b:g}",
                   str(m.layers), m.attention.kind, experts)
    console.print(mt)
    pt = Table(title="API list prices, USD per 1M tokens")
    for col in ("id", "input", "output", "date"):
        pt.add_column(col)
    for p in cat.prices.values():
        pt.add_row(p.id, f"{p.input:.2f}", f"{p.output:.2f}", p.date)
    console.print(pt)


def register(app: typer.Typer) -> None:
    """Add the ``economics`` command group to the main app."""
    app.add_typer(economics_app, name="economics")
