"""Mixture-of-experts terms of the roofline: experts touched, routing traffic, load imbalance, kernel counts.

Why a separate module: these are the terms that made the planner flatter MoE serving (issue 15).
Each one is derived from the architecture and the layout; the two constants that are not
(``expert_skew`` and the per-kernel time) are fitted and say which cases fitted them
(``Efficiency`` in roofline.py, docs/economics.md).
"""

from __future__ import annotations

import math

from .catalog import BYTES, Model


def experts_touched(experts: int, per_token: int, tokens: float) -> float:
    """Expected distinct experts hit per MoE layer by ``tokens`` tokens under uniform routing."""
    return experts * (1.0 - float((1.0 - per_token / experts) ** tokens))


def weight_bytes_read(model: Model, precision: str, tokens: float) -> tuple[float, float]:
    """(shared, expert) weight bytes one forward pass over ``tokens`` tokens reads; experts only if touched."""
    if model.moe is None:
        return model.total_params_b * 1e9 * BYTES[precision], 0.0
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


def expert_flops_share(model: Model) -> float:
    """Fraction of the per-token parameter FLOPs spent in routed experts."""
    if model.moe is None:
        return 0.0
    active_experts = model.moe.layers * model.moe.per_token * model.expert_params()
    return min(1.0, active_experts / (model.active_params_b * 1e9))


def ep_imbalance(model: Model, tokens: float, ranks: int, skew: float) -> float:
    """Busiest expert-parallel rank's expert load over the mean: the step waits for the busiest GPU.

    Each rank holds E/n experts and receives the token copies routed to them. Two sources of spread:
    sampling (a rank's count is ~Poisson with mean m = tokens x k / n, relative sd 1/sqrt(m)) and
    skewed expert popularity (per-expert coefficient of variation ``skew``, averaged over the rank's
    E/n experts: relative sd skew x sqrt(n/E)). The expected maximum of n ranks sits about
    sqrt(2 ln n) standard deviations above the mean. Tensor-parallel experts (every GPU a slice of
    every expert) are balanced by construction: this applies to expert parallelism only.
    """
    if model.moe is None or ranks <= 1 or tokens <= 0:
        return 1.0
    mean = tokens * model.moe.per_token / ranks
    rel_sd = math.sqrt(1.0 / max(mean, 1e-9) + skew**2 * ranks / model.moe.experts)
    return min(float(ranks), 1.0 + math.sqrt(2.0 * math.log(ranks)) * rel_sd)


def kernels_per_layer(model: Model) -> float:
    """GPU kernels one decode step launches per layer (CUDA-graph replay of the engines' decode graph).

    GQA attention: input norm, QKV GEMM, rotary + cache write, attention, output GEMM, residual norm (6).
    MLA adds the low-rank projections, their norms and the absorbed up-projection BMMs (+5).
    Dense FFN: gate/up GEMM, activation, down GEMM (3). A routed MoE layer: router GEMM, top-k,
    permute, two grouped GEMMs, activation, un-permute/combine (7), and a shared expert adds 3.
    Layers without experts (DeepSeek's first three) count as dense.
    """
    attention = 6 + (5 if model.attention.kind == "mla" else 0)
    if model.moe is None:
        return attention + 3
    moe_layers = model.moe.layers
    moe_ffn = 7 + (3 if model.moe.shared else 0)
    return attention + (moe_layers * moe_ffn + (model.layers - moe_layers) * 3) / model.layers
