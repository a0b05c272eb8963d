"""A roofline model of LLM serving: tokens/s from bytes moved, FLOPs done and bytes exchanged.

Prefill is compute-bound: ~2 x active parameters FLOPs per token plus attention.
A decode step is usually memory-bound: the weights are read once per step and shared by
the whole batch (for an MoE, only the experts the batch touches), and every sequence reads
its own KV cache. Parallel GPUs split weights, KV cache and FLOPs and pay for all-reduces
(tensor parallel) or all-to-alls (expert parallel) over the scale-up link; every kernel has a
fixed floor, which dominates small batches. MoE-specific terms live in moe.py, speculative
decoding in speculative.py. Efficiency factors (``Efficiency``) are the only tuning knobs and
each is justified in docs/economics.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from .catalog import BYTES, Gpu, Model
from .moe import (
    ep_imbalance,
    expert_flops_share,
    experts_touched,
    kernels_per_layer,
    moe_activation_bytes,
    weight_bytes_read,
)
from .speculative import Speculation

INDEXER_BYTES_PER_LAYER = 128  # DeepSeek Sparse Attention: one FP8 128-dim indexer key per token per layer


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak a tuned serving stack reaches; see docs/economics.md for the evidence.

    Fitted constants name the validation cases that fitted them (``split: fit`` in validation.yaml).
    """

    memory: float = 0.80  # HBM: FlashMLA 90% on H800, Azure GB200 92% STREAM; real decode kernels lower
    compute: float = 0.55  # dense GEMM: Azure GB200 FP8 55%, FlashMLA 59%, FasterTransformer best 70%
    comm: float = 0.70  # NCCL bus bandwidth on NVLink is ~70-80% of the link rate
    collective_latency_us: float = 10.0  # one small all-reduce / all-to-all on NVLink (CUDA graphs, custom kernels)
    # fixed time per kernel (launch gap, ramp, tail); fit: r1-h200x8-sglang-fp8-1k/1k-c4, r1-b200x8-sglang-fp8-1k/1k-c1
    kernel_us: float = 4.4
    moe: float = 0.21  # routed-expert GEMMs at this fraction of the dense rate; fit: qwen235b-h100x8-fp8-1k1k, r1-b200x8-fp4-fp8kv-c7168
    expert_skew: float = 1.2  # CV of expert popularity (EP imbalance, moe.ep_imbalance); fit: the same two cases
    host_us_per_seq: float = 32.0  # scheduler/sampling CPU time per running sequence per step; fit: qwen30b-b200-fp4-1k1k
    fp4: float = 0.60  # NVFP4 GEMMs reach this fraction of the FP8 efficiency; fit: llama70b-b200-fp4-1k1k, llama405b-b200x4-fp4-1k1k
    hbm_usable: float = 0.90  # TRT-LLM/vLLM leave ~10% for activations and the runtime
    max_batch_per_gpu: int = 1024  # schedulers cap the running batch (vLLM max_num_seqs, TRT-LLM max_batch_size)
    prefill_chunk_tokens: int = 8192  # tokens per prefill chunk (TRT-LLM max_num_tokens default)


Layout = Literal["auto", "tp", "dp"]


@dataclass(frozen=True)
class Deployment:
    """One model instance: ``gpus`` GPUs of one kind sharing weights.

    ``layout``: ``tp`` = everything tensor-parallel (experts too: each GPU a slice of every expert);
    ``dp`` = attention data-parallel (each GPU its own sequences) + experts expert-parallel;
    ``auto`` = ``dp`` for MoE models on several GPUs (TensorRT-LLM's and SGLang's max-throughput layout).
    """

    model: Model
    gpu: Gpu
    precision: str
    kv_precision: str
    gpus: int = 1
    layout: Layout = "auto"
    speculation: Speculation | None = None

    @property
    def attention_dp(self) -> bool:
        if self.gpus == 1 or self.layout == "tp":
            return False
        return self.layout == "dp" or self.model.is_moe

    @property
    def expert_parallel(self) -> bool:
        return self.attention_dp and self.model.is_moe

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
    """Time of one decode step, what bounds it, and how many output tokens per sequence it yields."""

    memory_s: float
    compute_s: float
    comm_s: float
    fixed_s: float = 0.0  # per-kernel fixed time of the step's kernels
    host_s: float = 0.0  # CPU scheduling time, overlapped with the GPU (overlap schedulers)
    draft_s: float = 0.0  # speculative drafting
    tokens: float = 1.0  # expected output tokens per sequence per step

    @property
    def gpu_s(self) -> float:
        return max(self.memory_s, self.compute_s) + self.comm_s + self.fixed_s + self.draft_s

    @property
    def total_s(self) -> float:
        return max(self.gpu_s, self.host_s)

    @property
    def per_token_s(self) -> float:
        return self.total_s / self.tokens

    @property
    def bound(self) -> str:
        if self.host_s > self.gpu_s:
            return "host"
        if self.fixed_s + self.comm_s > max(self.memory_s, self.compute_s):
            return "latency"
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
    layout: str = "tp"  # tp, or dp (attention data-parallel + expert parallel)
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weight_bytes(model: Model, precision: str) -> float:
    return model.total_params_b * 1e9 * BYTES[precision]


def weight_bytes_per_gpu(dep: Deployment) -> float:
    """Stored weights per GPU: split n ways under TP; under attention-DP + EP the non-expert weights
    (attention, embeddings, dense layers, shared experts) are replicated on every GPU."""
    total = weight_bytes(dep.model, dep.precision)
    if not dep.attention_dp:
        return total / dep.gpus
    routed = dep.model.routed_params() * BYTES[dep.precision]
    return (total - routed) + routed / dep.gpus


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


def _rates(dep: Deployment, eff: Efficiency) -> tuple[float, float]:
    """Effective (bytes/s, FLOP/s) of one GPU at this precision."""
    scale = eff.fp4 if dep.precision == "fp4" and "fp4" in dep.gpu.dense_tflops else 1.0
    bandwidth = dep.gpu.hbm_tbps * 1e12 * eff.memory * dep.gpu.hbm_scale
    return bandwidth, dep.gpu.tflops(dep.precision) * 1e12 * eff.compute * scale


def _param_flops(dep: Deployment, tokens: float, eff: Efficiency) -> float:
    """Per-GPU parameter FLOPs: 2 x active parameters per token; routed-expert FLOPs weighted by the MoE
    efficiency and, under expert parallelism, by the busiest rank's share."""
    model, n = dep.model, dep.gpus
    share = expert_flops_share(model)
    total = tokens * 2.0 * model.active_params_b * 1e9
    imbalance = ep_imbalance(model, tokens, n, eff.expert_skew) if dep.expert_parallel else 1.0
    return total * (1 - share) / n + total * share / eff.moe * imbalance / n


def _weight_traffic(dep: Deployment, tokens: float, eff: Efficiency) -> float:
    """Per-GPU bytes of weights and routing activations one forward pass over ``tokens`` tokens moves."""
    model, n = dep.model, dep.gpus
    shared, experts = weight_bytes_read(model, dep.precision, tokens)
    activations = moe_activation_bytes(model, tokens)
    if not dep.expert_parallel:
        return (shared + experts + activations) / n
    # each GPU reads the replicated non-expert weights; its experts and their tokens at the busiest rank's load
    imbalance = ep_imbalance(model, tokens, n, eff.expert_skew)
    return shared + (experts + activations) * imbalance / n


def comm_seconds(dep: Deployment, tokens: float, collectives: int, eff: Efficiency) -> float:
    """Bytes each GPU exchanges per forward pass over ``tokens`` tokens, plus per-collective latency.

    Tensor parallel: two ring all-reduces of the BF16 hidden state per layer.
    Attention-DP + expert parallel (MoE): per MoE layer an all-to-all dispatch (FP8) and combine (BF16)
    of each local token to the GPUs holding its experts.
    """
    n, model = dep.gpus, dep.model
    if n == 1:
        return 0.0
    if dep.expert_parallel and model.moe is not None:
        fanout = min(model.moe.per_token, n) * (n - 1) / n
        per_gpu = model.moe.layers * (tokens / n) * fanout * model.hidden * (BYTES["fp8"] + BYTES["bf16"])
        calls = 2 * model.moe.layers
    else:
        per_gpu = 2 * model.layers * 2.0 * (n - 1) / n * tokens * model.hidden * BYTES["bf16"]
        calls = 2 * model.layers
    return per_gpu / (dep.link_gbps * 1e9 * eff.comm) + collectives * calls * eff.collective_latency_us * 1e-6


def fixed_seconds(dep: Deployment, eff: Efficiency) -> float:
    """One forward pass's per-kernel fixed time: kernels per layer x layers x the per-kernel time."""
    return dep.model.layers * kernels_per_layer(dep.model) * eff.kernel_us * dep.gpu.launch_scale * 1e-6


def _verify_step(dep: Deployment, batch: int, ctx: float, eff: Efficiency, positions: int) -> Step:
    """A forward pass over ``positions`` new tokens for each of ``batch`` sequences (1 = plain decode)."""
    model, tokens = dep.model, batch * positions
    kv = batch * kv_bytes(model, ctx, dep.kv_precision, reading=True)  # read once, shared by the positions
    full, bounded = _attended(model, ctx, reading=True)
    attn_flops = tokens * model.attention.decode_flops_per_ctx_token() * (full + bounded)
    bandwidth, peak = _rates(dep, eff)
    local = batch / dep.gpus if dep.attention_dp else batch
    return Step(
        memory_s=(_weight_traffic(dep, tokens, eff) + kv / dep.kv_shards) / bandwidth,
        compute_s=(_param_flops(dep, tokens, eff) + attn_flops / dep.gpus) / peak,
        comm_s=comm_seconds(dep, tokens, 1, eff),
        fixed_s=fixed_seconds(dep, eff),
        host_s=eff.host_us_per_seq * dep.gpu.host_scale * local * 1e-6,
    )


def decode_step(dep: Deployment, batch: int, ctx: float, eff: Efficiency) -> Step:
    """One decode step of ``batch`` sequences at context ``ctx``; with speculation, draft + verify."""
    spec = dep.speculation
    if spec is None:
        return _verify_step(dep, batch, ctx, eff, 1)
    plain = _verify_step(dep, batch, ctx, eff, 1)
    verify = _verify_step(dep, batch, ctx, eff, spec.positions)
    return replace(verify, draft_s=spec.draft_fraction(dep.model.layers) * plain.gpu_s, tokens=spec.tokens_per_step)


def prefill_seconds(dep: Deployment, requests: int, input_tokens: int, eff: Efficiency) -> float:
    """Compute-bound prefill of ``requests`` prompts, in chunks that each read the weights once."""
    model, n = dep.model, dep.gpus
    tokens = requests * input_tokens
    full, bounded = _attended(model, input_tokens / 2, reading=False)  # causal: a token sees half the prompt on average
    chunks = max(1, math.ceil(tokens / (eff.prefill_chunk_tokens * (n if dep.attention_dp else 1))))
    chunk = tokens / chunks
    attn = tokens * model.attention.prefill_flops_per_ctx_token() * (full + bounded) / n
    bandwidth, peak = _rates(dep, eff)
    compute = chunks * _param_flops(dep, chunk, eff) / peak + attn / peak
    memory = chunks * _weight_traffic(dep, chunk, eff) / bandwidth
    return max(compute, memory) + comm_seconds(dep, tokens, chunks, eff) + chunks * fixed_seconds(dep, eff)


def kv_bytes_per_gpu(dep: Deployment, ctx: float) -> float:
    """One sequence's stored KV cache on each GPU that holds it."""
    return kv_bytes(dep.model, ctx, dep.kv_precision) / dep.kv_shards


def max_concurrency(dep: Deployment, work: Workload, eff: Efficiency) -> int:
    """Largest running batch whose weights + full-length KV caches fit, capped by the scheduler."""
    free = dep.gpu.hbm_gb * 1e9 * eff.hbm_usable - weight_bytes_per_gpu(dep)
    if free <= 0:
        return 0
    # TP: each GPU holds 1/kv_shards of every sequence; attention-DP: whole sequences, 1/n of the batch each
    by_memory = int(free // kv_bytes_per_gpu(dep, work.peak_context))
    return min(by_memory, eff.max_batch_per_gpu * dep.gpus)


def estimate(
    dep: Deployment,
    work: Workload,
    eff: Efficiency | None = None,
    *,
    concurrency: int | None = None,
    min_user_tps: float | None = None,
) -> Estimate:
    """Serve ``work`` at ``concurrency`` (default: the largest batch that fits, or the largest meeting ``min_user_tps``).

    An MoE on several GPUs with ``layout="auto"`` is served in whichever layout gives more tokens/s:
    tensor parallel wins at small batches (no replicated attention weights, no expert imbalance),
    attention-DP + EP at large ones (MLA's cache sharded, more sequences fit).
    """
    eff = eff or Efficiency()
    if dep.layout == "auto" and dep.model.is_moe and dep.gpus > 1:
        options = [_estimate(replace(dep, layout=lay), work, eff, concurrency, min_user_tps) for lay in ("dp", "tp")]
        fitting = [e for e in options if e.fits] or options
        return max(fitting, key=lambda e: e.tokens_per_s)
    return _estimate(dep, work, eff, concurrency, min_user_tps)


def _estimate(dep: Deployment, work: Workload, eff: Efficiency, concurrency: int | None, min_user_tps: float | None) -> Estimate:
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
    t_decode = work.output_tokens * step.per_token_s
    total = t_prefill + t_decode
    out_tps = run * work.output_tokens / total
    return Estimate(
        fits=fits,
        gpus=dep.gpus,
        concurrency=batch,
        max_concurrency=cap,
        weights_gb_per_gpu=weight_bytes_per_gpu(dep) / 1e9,
        kv_gb_per_gpu=run * kv_bytes_per_gpu(dep, work.peak_context) / 1e9,
        tokens_per_s=out_tps,
        tokens_per_s_per_gpu=out_tps / dep.gpus,
        input_tokens_per_s=run * work.input_tokens / total,
        user_tokens_per_s=out_tps / run,
        time_per_output_token_ms=step.per_token_s * 1e3,
        prefill_s_per_input_token=t_prefill / (run * work.input_tokens),
        decode_s_per_output_token=t_decode / (run * work.output_tokens),
        bound=step.bound,
        layout="dp" if dep.attention_dp else "tp",
        details={
            "step_memory_ms": step.memory_s * 1e3,
            "step_compute_ms": step.compute_s * 1e3,
            "step_comm_ms": step.comm_s * 1e3,
            "step_fixed_ms": step.fixed_s * 1e3,
            "step_host_ms": step.host_s * 1e3,
            "step_draft_ms": step.draft_s * 1e3,
            "tokens_per_step": step.tokens,
            "prefill_s_per_batch": t_prefill,
        },
    )


def _fits(dep: Deployment, work: Workload, eff: Efficiency, batch: int) -> bool:
    need = weight_bytes_per_gpu(dep) + batch * kv_bytes_per_gpu(dep, work.peak_context)
    return need <= dep.gpu.hbm_gb * 1e9 * eff.hbm_usable


def user_tps(dep: Deployment, work: Workload, eff: Efficiency, batch: int) -> float:
    step = decode_step(dep, batch, work.mean_decode_context, eff)
    total = prefill_seconds(dep, batch, work.input_tokens, eff) + work.output_tokens * step.per_token_s
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
