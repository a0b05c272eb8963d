"""The roofline against hand-computed cases, the catalogs' integrity, and the validation set."""

import statistics

import pytest

from calibroute.economics.catalog import BYTES, check_precision, load_catalog
from calibroute.economics.planner import CostRequest, cost, smallest_fit
from calibroute.economics.roofline import (
    Deployment,
    Efficiency,
    Workload,
    decode_step,
    estimate,
    experts_touched,
    kv_bytes,
    max_concurrency,
    prefill_seconds,
    weight_bytes_read,
)
from calibroute.economics.validate import load_cases, median_abs_error, validate
from calibroute.errors import InputError, UnknownModelError

CAT = load_catalog()
IDEAL = Efficiency(memory=1.0, compute=1.0, kernel_us=0.0, moe=1.0, fp4=1.0, expert_skew=0.0, host_us_per_seq=0.0)


def dep(model: str, gpu: str, precision: str = "bf16", gpus: int = 1, kv: str | None = None, layout: str = "auto") -> Deployment:
    kv = kv or ("bf16" if precision == "bf16" else "fp8")
    return Deployment(CAT.model(model), CAT.gpu(gpu), precision, kv, gpus, layout)  # type: ignore[arg-type]


def test_batch_one_decode_of_8b_bf16_on_h100_is_bandwidth_over_weight_bytes():
    step = decode_step(dep("llama-3.1-8b", "h100"), batch=1, ctx=1, eff=IDEAL)
    by_hand = 3.35e12 / (8.03e9 * 2)  # ~208.6 tokens/s: every step reads all 16 GB of weights once
    assert step.bound == "memory"
    assert 1 / step.total_s == pytest.approx(by_hand, rel=0.01)


def test_efficiency_and_per_kernel_time_slow_the_same_step_down():
    ideal = decode_step(dep("llama-3.1-8b", "h100"), 1, 1, IDEAL).total_s
    real = decode_step(dep("llama-3.1-8b", "h100"), 1, 1, Efficiency()).total_s
    kernels = 32 * 9  # 32 dense GQA layers of 9 kernels (moe.kernels_per_layer)
    assert real == pytest.approx(ideal / Efficiency().memory + kernels * Efficiency().kernel_us * 1e-6, rel=0.01)


def test_weights_are_shared_across_the_batch_so_throughput_grows_with_it():
    d = dep("llama-3.1-8b", "h100", "fp8")
    tps = [b / decode_step(d, b, 2000, IDEAL).total_s for b in (1, 8, 64)]
    assert tps[0] < tps[1] < tps[2]
    assert tps[1] > 6 * tps[0]  # 8 sequences cost little more than 1 while weights dominate the bytes


@pytest.mark.parametrize(
    "model,per_token",
    [("llama-3.1-8b", 131_072), ("llama-3.1-70b", 327_680), ("llama-3.1-405b", 516_096),
     ("qwen3-235b-a22b", 192_512), ("deepseek-v3", 70_272)],
)
def test_kv_cache_bytes_per_token_match_the_gqa_and_mla_formulas(model, per_token):
    m = CAT.model(model)
    assert kv_bytes(m, 1000, "bf16") == pytest.approx(1000 * per_token)
    assert kv_bytes(m, 1000, "fp8") == pytest.approx(500 * per_token)


def test_sliding_window_layers_cap_their_cache():
    m = CAT.model("gpt-oss-120b")  # 18 full layers, 18 layers with a 128-token window
    per_layer = 2 * 8 * 64 * 2
    assert kv_bytes(m, 100_000, "bf16") == pytest.approx(per_layer * (18 * 100_000 + 18 * 128))


def test_sparse_attention_bounds_what_a_decode_step_reads():
    m = CAT.model("deepseek-v3.2")
    assert kv_bytes(m, 100_000, "bf16", reading=True) < 0.2 * kv_bytes(m, 100_000, "bf16")


def test_experts_touched_grows_from_k_to_all_experts():
    assert experts_touched(256, 8, 1) == pytest.approx(8)
    assert experts_touched(256, 8, 4096) == pytest.approx(256, rel=1e-6)
    assert 8 < experts_touched(256, 8, 16) < 16 * 8


def test_moe_at_batch_one_reads_about_its_active_parameters_not_its_total():
    m = CAT.model("deepseek-v3")
    shared, experts = weight_bytes_read(m, "fp8", 1)
    assert (shared + experts) / 1e9 == pytest.approx(m.active_params_b, rel=0.05)
    shared, experts = weight_bytes_read(m, "fp8", 4096)
    assert (shared + experts) / 1e9 == pytest.approx(m.total_params_b, rel=0.01)


def test_moe_decodes_faster_than_a_dense_model_of_similar_size_at_small_batch():
    moe = decode_step(dep("deepseek-v3", "h200", "fp8", 8, layout="tp"), 1, 2000, IDEAL)
    dense = decode_step(dep("llama-3.1-405b", "h200", "fp8", 8), 1, 2000, IDEAL)
    assert dense.memory_s / moe.memory_s > 5  # 37B active of 671B vs 405B dense


def test_prefill_is_compute_bound_at_two_flops_per_active_parameter():
    d = dep("llama-3.1-8b", "h100", "fp8")
    t = prefill_seconds(d, requests=64, input_tokens=128, eff=IDEAL)
    by_hand = 64 * 128 * 2 * 8.03e9 / 1979e12
    assert t == pytest.approx(by_hand, rel=0.05)  # short prompts: attention adds ~1%


def test_largest_batch_that_fits_shrinks_with_context():
    d, eff = dep("llama-3.1-70b", "h200", "fp8"), Efficiency(max_batch_per_gpu=10**6)
    short, long = max_concurrency(d, Workload(1000, 1000), eff), max_concurrency(d, Workload(8000, 8000), eff)
    free = 141e9 * 0.9 - 70.6e9
    assert short == int(free // kv_bytes(d.model, 2000, "fp8"))
    assert long < short / 7


def test_model_that_does_not_fit_has_no_batch_and_smallest_fit_picks_gpu_counts():
    eff = Efficiency()
    assert max_concurrency(dep("llama-3.1-405b", "h100", "bf16"), Workload(), eff) == 0
    assert smallest_fit(dep("llama-3.1-405b", "h100", "bf16"), Workload(), eff, None) is None
    assert smallest_fit(dep("llama-3.1-405b", "h100", "fp8"), Workload(), eff, None) == 8
    assert smallest_fit(dep("llama-3.1-8b", "h100", "fp8"), Workload(), eff, None) == 1
    assert smallest_fit(dep("deepseek-v3", "gb200", "fp4"), Workload(), eff, None) == 4
    assert smallest_fit(dep("deepseek-v3", "gb200", "fp8"), Workload(), eff, None) == 8  # 671 GB > 4 x 167 GB usable


def test_no_fit_error_names_where_the_model_would_fit():
    with pytest.raises(InputError, match=r"does not fit.*fits on: .*h200/fp8"):
        cost(CostRequest("deepseek-v3", "h100", "fp8"))


def test_costs_follow_gpu_time_and_utilisation():
    full = cost(CostRequest("llama-3.1-8b", "h100", "fp8", utilization=1.0))
    half = cost(CostRequest("llama-3.1-8b", "h100", "fp8", utilization=0.5))
    est = full.estimate
    hourly = CAT.gpu("h100").usd_per_gpu_hour.typical
    assert full.usd_per_mtok_output == pytest.approx(hourly / 3600 * est.decode_s_per_output_token * 1e6)
    assert half.usd_per_mtok_output == pytest.approx(2 * full.usd_per_mtok_output)
    per_request = (1000 * full.usd_per_mtok_input + 1000 * full.usd_per_mtok_output) / 1e6
    requests_per_s = est.tokens_per_s / 1000
    assert per_request == pytest.approx(hourly / 3600 / requests_per_s)  # input + output costs add up to the GPU bill


def test_user_speed_target_picks_a_smaller_batch():
    d = dep("llama-3.1-70b", "b200", "fp4")
    fast = estimate(d, Workload(1000, 1000), min_user_tps=60)
    busy = estimate(d, Workload(1000, 1000))
    assert fast.user_tokens_per_s >= 60 and fast.concurrency < busy.concurrency
    assert fast.tokens_per_s_per_gpu < busy.tokens_per_s_per_gpu


@pytest.mark.parametrize(
    "lookup,bad,suggestion",
    [(CAT.model, "llama-3.1-8", "llama-3.1-8b"), (CAT.gpu, "h10", "h100"), (CAT.model, "deepsek-v3", "deepseek-v3")],
)
def test_unknown_ids_name_the_nearest_valid_ones(lookup, bad, suggestion):
    with pytest.raises(InputError) as info:
        lookup(bad)
    assert f"did you mean {suggestion}" in str(info.value)


def test_unknown_model_is_an_unknown_model_error_and_aliases_resolve():
    with pytest.raises(UnknownModelError):
        CAT.model("gpt-7")
    assert CAT.model("deepseek-r1").id == "deepseek-v3" and CAT.model("Llama-3.3-70B").id == "llama-3.1-70b"
    with pytest.raises(InputError, match="bf16"):
        check_precision("bf61")


def test_every_catalog_entry_cites_a_dated_source_and_rubin_is_marked_preliminary():
    for g in CAT.gpus.values():
        assert g.spec.source and g.spec.date and g.price.source
        assert g.usd_per_gpu_hour.low <= g.usd_per_gpu_hour.high
    for m in CAT.models.values():
        assert m.arch.source and m.arch.date and m.active_params_b <= m.total_params_b
        if m.moe:  # the layout must explain the active parameter count (to within 25%)
            active = m.total_params_b * 1e9 - m.routed_params() + m.moe.layers * m.moe.per_token * m.expert_params()
            assert active / 1e9 == pytest.approx(m.active_params_b, rel=0.25), m.id
    assert CAT.gpu("rubin").preliminary and CAT.gpu("rubin").spec.label == "V"
    assert set(BYTES) == {"bf16", "fp8", "fp4"}


def test_validation_cases_resolve_and_median_error_is_computed_from_them():
    cases, sources = load_cases()
    assert len(cases) >= 20 and all(c.ref in sources for c in cases)
    results = validate()
    errors = [abs(r.predicted - r.case.measured) / r.case.measured for r in results]
    assert median_abs_error(results) == pytest.approx(statistics.median(errors))
    slower = validate(Efficiency(memory=0.4, compute=0.3))
    assert all(s.predicted < r.predicted for s, r in zip(slower, results))
