"""A roofline model of LLM serving: tokens/s from bytes moved, FLOPs done and bytes exchanged.

Prefill is compute-bound: ~2 x active parameters FLOPs per token plus attention.
A decode step is usually memory-bound: the weights are read once per step and shared by
the whole batch (for an MoE, only the experts the batch touches), and every sequence reads
its own KV cache. Parallel GPUs split weights, KV cache and FLOPs and pay for all-reduces
over the scale-up link. Efficiency factors (``Efficiency``) are the only tuning knobs and
each is justified in docs/economics.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .catalog import BYTES, Gpu, Model

INDEXER_BYTES_PER_LAYER = 128  # DeepSeek Sparse Attention: one FP8 128-dim indexer key per token per layer


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak a tuned serving stack reaches; see docs/economics.md for the evidence."""

    memory: float = 0.80  # HBM: FlashMLA 90% on H800, Azure GB200 92% STREAM; real decode kernels lower
    compute: float = 0.55  # dense GEMM: Azure GB200 FP8 55%, FlashMLA 59%, FasterTransformer best 70%
    comm: float = 0.70  # NCCL bus bandwidth on NVLink is ~70-80% of the link rate
    collective_latency_us: float = 10.0  # one small all-reduce on NVLink (CUDA graphs, custom all-reduce)
    layer_overhead_us: float = 10.0  # per layer per step: norms, rotary, sampling, kernel gaps that move few bytes
    moe: float = 0.25  # routed-expert FLOPs run at this fraction of the dense GEMM rate (calibrated; docs/economics.md)
    fp4: float = 0.65  # native FP4 GEMMs reach this fraction of the FP8 GEMM efficiency (calibrated)
    hbm_usable: float = 0.90  # TRT-LLM/vLLM leave ~10% for activations and the runtime
    max_batch_per_gpu: int = 1024  # schedulers cap the running batch (vLLM max_num_seqs, TRT-LLM max_batch_size)
    prefill_chunk_tokens: int = 8192  # tokens per prefill chunk (TRT-LLM max_num_tokens default)


@dataclass(frozen=True)
class Deployment:
    """One model instance: ``gpus`` GPUs of one kind sharing weights (tensor/expert parallel)."""

    model: Model
    gpu: Gpu
    precision: str
    kv_precision: str
    gpus: int = 1

    @property
    def attention_dp(self) -> bool:
        """MoE models serve attention data-parallel (each GPU its own sequences) and experts expert-parallel."""
        return self.model.is_moe and self.gpus > 1

    @property
    def kv_shards(self) -> int:
        """GPUs the KV cache is split over: all with attention-DP; KV heads under TP (MLA's latent is replicated)."""
        if self.attention_dp:
            return self.gpus
        if self.model.attention.kind == "mla":
            return 1
        return min(self.gpus, int(self.model.attention.kv_heads or 1))

    @property
    def link_gbps(self) -> float:
        """Scale-up bandwidth inside one NVLink domain, the NIC beyond it."""
        return self.gpu.scaleup_gbps if self.gpus <= self.gpu.domain_size else self.gpu.scaleout_gbps


@dataclass(frozen=True)
class Workload:
    input_tokens: int = 1000
    output_tokens: int = 1000

    @property
    def peak_context(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def mean_decode_context(self) -> float:
        return self.input_tokens + self.output_tokens / 2


@dataclass(frozen=True)
class Step:
    """Time of one decode step and what bounds it."""

    memory_s: float
    compute_s: float
    comm_s: float

    @property
    def total_s(self) -> float:
        return max(self.memory_s, self.compute_s) + self.comm_s

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s >= self.compute_s else "compute"


@dataclass(frozen=True)
class Estimate:
    """Steady-state serving of a workload at a running batch (``concurrency``)."""

    fits: bool
    gpus: int
    concurrency: int
    max_concurrency: int
    weights_gb_per_gpu: float
    kv_gb_per_gpu: float
    tokens_per_s: float  # output tokens/s of the whole deployment, prefill time included
    tokens_per_s_per_gpu: float
    input_tokens_per_s: float
    user_tokens_per_s: float  # output tokens/s one request sees over its lifetime
    time_per_output_token_ms: float  # one decode step
    prefill_s_per_input_token: float  # deployment-seconds spent per input token
    decode_s_per_output_token: float  # deployment-seconds spent per output token
    bound: str
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weight_bytes(model: Model, precision: str) -> float:
    return model.total_params_b * 1e9 * BYTES[precision]


def _attended(model: Model, ctx: float, *, reading: bool) -> tuple[float, float]:
    """(full-cache layers x tokens, bounded layers x tokens) a query attends over at context ``ctx``."""
    att = model.attention
    full = att.full_layers if att.full_layers is not None else model.layers
    bounded = model.layers - full
    window = min(ctx, att.sliding_window) if att.sliding_window else 0.0
    span = min(ctx, att.sparse_topk) if (reading and att.sparse_topk) else ctx
    return full * span, bounded * window


def kv_bytes(model: Model, ctx: float, kv_precision: str, *, reading: bool = False) -> float:
    """KV-cache bytes of one sequence at ``ctx`` tokens (stored), or what one decode step reads of it."""
    per_layer = model.attention.cached_values_per_layer() * BYTES[kv_precision]
    full, bounded = _attended(model, ctx, reading=reading)
    indexer = model.layers * ctx * INDEXER_BYTES_PER_LAYER if model.attention.sparse_topk else 0.0
    return per_layer * (full + bounded) + indexer


def experts_touched(experts: int, per_token: int, tokens: float) -> float:
    """Expected distinct experts hit per MoE layer by ``tokens`` tokens under uniform routing."""
    return experts * (1.0 - float((1.0 - per_token / experts) ** tokens))


def weight_bytes_read(model: Model, precision: str, tokens: float) -> tuple[float, float]:
    """(shared, expert) weight bytes one forward pass over ``tokens`` tokens reads; experts only if touched."""
    if model.moe is None:
        return weight_bytes(model, precision), 0.0
    shared = model.total_params_b * 1e9 - model.routed_params()
    touched = experts_touched(model.moe.experts, model.moe.per_token, tokens)
    return shared * BYTES[precision], model.moe.layers * touched * model.expert_params() * BYTES[precision]


def moe_activation_bytes(model: Model, tokens: float) -> float:
    """Activation traffic of routing: each token's k copies are permuted, pass two grouped GEMMs and are combined.

    Per copy: hidden state written and read at dispatch and combine (4 x hidden) and the gate/up output
    and activated intermediate written and read (2 x 2 x ffn + 2 x ffn), all in BF16.
    """
    if model.moe is None:
        return 0.0
    per_copy = (4 * model.hidden + 6 * model.moe.expert_ffn) * BYTES["bf16"]
    return tokens * model.moe.layers * model.moe.per_token * per_copy


def _expert_flops_share(model: Model) -> float:
    """Fraction of the per-token parameter FLOPs spent in routed experts."""
    if model.moe is None:
        return 0.0
    active_experts = model.moe.layers * model.moe.per_token * model.expert_params()
    return min(1.0, active_experts / (model.active_params_b * 1e9))


def _rates(dep: Deployment, eff: Efficiency) -> tuple[float, float]:
    """Effective (bytes/s, FLOP/s) of one GPU at this precision."""
    scale = eff.fp4 if dep.precision == "fp4" and "fp4" in dep.gpu.dense_tflops else 1.0
    return dep.gpu.hbm_tbps * 1e12 * eff.memory, dep.gpu.tflops(dep.precision) * 1e12 * eff.compute * scale


def _param_flops(model: Model, tokens: float, eff: Efficiency) -> float:
    """2 x active parameters per token, with routed-expert FLOPs weighted up by the MoE efficiency."""
    share = _expert_flops_share(model)
    return tokens * 2.0 * model.active_params_b * 1e9 * ((1 - share) + share / eff.moe)


def comm_seconds(dep: Deployment, tokens: float, collectives: int, eff: Efficiency) -> float:
    """Bytes each GPU exchanges per forward pass over ``tokens`` tokens, plus per-collective latency.

    Tensor parallel: two ring all-reduces of the BF16 hidden state per layer.
    Attention-DP + expert parallel (MoE): per MoE layer an all-to-all dispatch (FP8) and combine (BF16)
    of each local token to the GPUs holding its experts.
    """
    n, model = dep.gpus, dep.model
    if n == 1:
        return 0.0
    if dep.attention_dp and model.moe is not None:
        fanout = min(model.moe.per_token, n) * (n - 1) / n
        per_gpu = model.moe.layers * (tokens / n) * fanout * model.hidden * (BYTES["fp8"] + BYTES["bf16"])
        calls = 2 * model.moe.layers
    else:
        per_gpu = 2 * model.layers * 2.0 * (n - 1) / n * tokens * model.hidden * BYTES["bf16"]
        calls = 2 * model.layers
    return per_gpu / (dep.link_gbps * 1e9 * eff.comm) + collectives * calls * eff.collective_latency_us * 1e-6


def decode_step(dep: Deployment, batch: int, ctx: float, eff: Efficiency) -> Step:
    model, n = dep.model, dep.gpus
    shared, experts = weight_bytes_read(model, dep.precision, batch)
    kv = batch * kv_bytes(model, ctx, dep.kv_precision, reading=True)
    full, bounded = _attended(model, ctx, reading=True)
    flops = _param_flops(model, batch, eff) + batch * model.attention.decode_flops_per_ctx_token() * (full + bounded)
    bandwidth, peak = _rates(dep, eff)
    return Step(
        memory_s=((shared + experts + moe_activation_bytes(model, batch)) / n + kv / dep.kv_shards) / bandwidth,
        compute_s=flops / n / peak,
        comm_s=comm_seconds(dep, batch, 1, eff) + model.layers * eff.layer_overhead_us * 1e-6,
    )


def prefill_seconds(dep: Deployment, requests: int, input_tokens: int, eff: Efficiency) -> float:
    """Compute-bound prefill of ``requests`` prompts, in chunks that each read the weights once."""
    model, n = dep.model, dep.gpus
    tokens = requests * input_tokens
    full, bounded = _attended(model, input_tokens / 2, reading=False)  # causal: a token sees half the prompt on average
    flops = _param_flops(model, tokens, eff) + tokens * model.attention.prefill_flops_per_ctx_token() * (full + bounded)
    bandwidth, peak = _rates(dep, eff)
    compute = flops / n / peak
    chunks = max(1, math.ceil(tokens / eff.prefill_chunk_tokens))
    shared, experts = weight_bytes_read(model, dep.precision, min(tokens, eff.prefill_chunk_tokens))
    memory = (chunks * (shared + experts) + moe_activation_bytes(model, tokens)) / n / bandwidth
    return max(compute, memory) + comm_seconds(dep, tokens, chunks, eff)


def memory_capacity(dep: Deployment, eff: Efficiency) -> float:
    return dep.gpus * dep.gpu.hbm_gb * 1e9 * eff.hbm_usable


def max_concurrency(dep: Deployment, work: Workload, eff: Efficiency) -> int:
    """Largest running batch whose weights + full-length KV caches fit, capped by the scheduler."""
    free = memory_capacity(dep, eff) - weight_bytes(dep.model, dep.precision)
    if free <= 0:
        return 0
    per_seq = kv_bytes(dep.model, work.peak_context, dep.kv_precision) * dep.gpus / dep.kv_shards
    by_memory = int(free // per_seq)
    return min(by_memory, eff.max_batch_per_gpu * dep.gpus)


def estimate(
    dep: Deployment,
    work: Workload,
    eff: Efficiency | None = None,
    *,
    concurrency: int | None = None,
    min_user_tps: float | None = None,
) -> Estimate:
    """Serve ``work`` at ``concurrency`` (default: the largest batch that fits, or the largest meeting ``min_user_tps``)."""
    eff = eff or Efficiency()
    cap = max_concurrency(dep, work, eff)
    if concurrency is not None:
        batch = concurrency
    elif min_user_tps is not None:
        batch = _largest_batch_at_speed(dep, work, eff, cap, min_user_tps)
    else:
        batch = cap
    fits = cap >= 1 and (concurrency is None or _fits(dep, work, eff, batch))
    run = max(batch, 1)
    t_prefill = prefill_seconds(dep, run, work.input_tokens, eff)
    step = decode_step(dep, run, work.mean_decode_context, eff)
    t_decode = work.output_tokens * step.total_s
    total = t_prefill + t_decode
    out_tps = run * work.output_tokens / total
    return Estimate(
        fits=fits,
        gpus=dep.gpus,
        concurrency=batch,
        max_concurrency=cap,
        weights_gb_per_gpu=weight_bytes(dep.model, dep.precision) / dep.gpus / 1e9,
        kv_gb_per_gpu=run * kv_bytes(dep.model, work.peak_context, dep.kv_precision) / dep.kv_shards / 1e9,
        tokens_per_s=out_tps,
        tokens_per_s_per_gpu=out_tps / dep.gpus,
        input_tokens_per_s=run * work.input_tokens / total,
        user_tokens_per_s=out_tps / run,
        time_per_output_token_ms=step.total_s * 1e3,
        prefill_s_per_input_token=t_prefill / (run * work.input_tokens),
        decode_s_per_output_token=t_decode / (run * work.output_tokens),
        bound=step.bound,
        details={
            "step_memory_ms": step.memory_s * 1e3,
            "step_compute_ms": step.compute_s * 1e3,
            "step_comm_ms": step.comm_s * 1e3,
            "prefill_s_per_batch": t_prefill,
        },
    )


def _fits(dep: Deployment, work: Workload, eff: Efficiency, batch: int) -> bool:
    per_seq = kv_bytes(dep.model, work.peak_context, dep.kv_precision) * dep.gpus / dep.kv_shards
    need = weight_bytes(dep.model, dep.precision) + batch * per_seq
    return need <= memory_capacity(dep, eff)


def user_tps(dep: Deployment, work: Workload, eff: Efficiency, batch: int) -> float:
    step = decode_step(dep, batch, work.mean_decode_context, eff)
    total = prefill_seconds(dep, batch, work.input_tokens, eff) + work.output_tokens * step.total_s
    return work.output_tokens / total


def _largest_batch_at_speed(dep: Deployment, work: Workload, eff: Efficiency, cap: int, target: float) -> int:
    """Binary search: per-user speed falls as the batch grows."""
    if cap < 1 or user_tps(dep, work, eff, 1) < target:
        return 1 if cap >= 1 else 0
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if user_tps(dep, work, eff, mid) >= target:
            lo = mid
        else:
            hi = mid - 1
    return lo
