"""The versioned hardware, model and API-price catalogs shipped in ``economics/data``.

Every figure carries where it came from (``Cited``) so a reader can tell a vendor
claim from a measurement. Lookups by id raise calibroute's input errors naming the
nearest valid ids, so a typo on the command line is one clear line, not a traceback.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ArtifactError, InputError, UnknownModelError

Label = Literal["V", "VM", "M", "3P", "D"]
Precision = Literal["bf16", "fp8", "fp4"]
PRECISIONS: tuple[Precision, ...] = ("bf16", "fp8", "fp4")
# Bytes per stored value; fp4 includes the block scales of NVFP4/MXFP4 (8-bit scale per 16 or 32 values).
BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5625}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cited(_Strict):
    """Where a group of figures comes from; ``label`` V marks a vendor claim."""

    label: Label
    date: str
    source: str


class Prices(_Strict):
    low: float = Field(gt=0)
    typical: float = Field(gt=0)
    high: float = Field(gt=0)


class Gpu(_Strict):
    id: str
    name: str
    hbm_gb: float = Field(gt=0)
    hbm_tbps: float = Field(gt=0)
    dense_tflops: dict[Precision, float]
    vendor_peak_tflops: dict[Precision, float] = Field(default_factory=dict)
    scaleup_gbps: float = Field(gt=0, description="scale-up link bandwidth per GPU, one direction")
    domain_size: int = Field(gt=0, description="GPUs in one NVLink / Infinity Fabric domain")
    scaleout_gbps: float = Field(gt=0)
    tdp_w: float = Field(gt=0)
    launch_scale: float = Field(default=1.0, gt=0, description="per-kernel fixed time relative to NVIDIA (fitted for AMD)")
    hbm_scale: float = Field(default=1.0, gt=0, description="achieved decode bandwidth relative to the common η_mem (fitted for MI300X)")
    host_scale: float = Field(default=1.0, gt=0, description="host (CPU) time per scheduled sequence relative to x86 (fitted for Grace)")
    usd_per_gpu_hour: Prices
    preliminary: bool = False
    spec: Cited
    price: Cited

    def tflops(self, precision: str) -> float:
        """Dense tensor rate; FP4 without FP4 tensor cores runs as weight-only FP4 at the FP8 rate."""
        if precision in self.dense_tflops:
            return self.dense_tflops[precision]
        return self.dense_tflops["fp8"]


class Attention(_Strict):
    kind: Literal["gqa", "mla"]
    q_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = None
    kv_lora_rank: int | None = None
    rope_dim: int | None = None
    full_layers: int | None = Field(default=None, ge=0, description="layers with a full-length cache")
    sliding_window: int | None = Field(default=None, gt=0)
    sparse_topk: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _layout_complete(self) -> "Attention":
        if self.kind == "gqa" and self.kv_heads is None:
            raise ValueError("gqa attention needs kv_heads")
        if self.kind == "mla" and (self.kv_lora_rank is None or self.rope_dim is None):
            raise ValueError("mla attention needs kv_lora_rank and rope_dim")
        return self

    def cached_values_per_layer(self) -> int:
        """Values stored per token per layer: K and V per KV head (GQA) or one shared latent (MLA)."""
        if self.kind == "mla":
            return int(self.kv_lora_rank or 0) + int(self.rope_dim or 0)
        return 2 * int(self.kv_heads or 0) * self.head_dim

    def decode_flops_per_ctx_token(self) -> float:
        """FLOPs per layer per cached token for one query (QK^T and AV); MLA decodes in absorbed form."""
        if self.kind == "mla":
            latent = int(self.kv_lora_rank or 0)
            return 2.0 * self.q_heads * (latent + int(self.rope_dim or 0) + latent)
        return 2.0 * self.q_heads * 2 * self.head_dim

    def prefill_flops_per_ctx_token(self) -> float:
        v_dim = self.v_head_dim or self.head_dim
        return 2.0 * self.q_heads * (self.head_dim + v_dim)


class Moe(_Strict):
    layers: int = Field(gt=0)
    experts: int = Field(gt=0)
    per_token: int = Field(gt=0)
    shared: int = Field(ge=0)
    expert_ffn: int = Field(gt=0)


class Model(_Strict):
    id: str
    aliases: list[str] = Field(default_factory=list)
    name: str
    total_params_b: float = Field(gt=0)
    active_params_b: float = Field(gt=0)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    attention: Attention
    moe: Moe | None = None
    context: int = Field(gt=0)
    arch: Cited

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def kind(self) -> str:
        return "moe" if self.moe is not None else "dense"

    @property
    def family(self) -> str:
        """Model family for error bands: the id up to the version (llama, deepseek, qwen3, gpt-oss, glm ...)."""
        return "gpt-oss" if self.id.startswith("gpt-oss") else self.id.split("-")[0]

    def expert_params(self) -> float:
        """Parameters of one routed expert in one layer (gate, up and down projections)."""
        return 3.0 * self.hidden * self.moe.expert_ffn if self.moe else 0.0

    def routed_params(self) -> float:
        """All routed-expert parameters; the rest (attention, embeddings, shared experts) is always read."""
        return self.moe.layers * self.moe.experts * self.expert_params() if self.moe else 0.0


class ApiPrice(_Strict):
    id: str
    model: str | None = Field(default=None, description="catalog model id this API serves, if any")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    date: str
    source: str
    label: Label = "V"


class Catalog(_Strict):
    version: str
    gpus: dict[str, Gpu]
    models: dict[str, Model]
    prices: dict[str, ApiPrice]
    model_aliases: dict[str, str]

    def gpu(self, gpu_id: str) -> Gpu:
        key = gpu_id.strip().lower()
        if key not in self.gpus:
            raise InputError(f"unknown GPU {gpu_id!r}{nearest_hint(key, list(self.gpus))}")
        return self.gpus[key]

    def model(self, model_id: str) -> Model:
        key = model_id.strip().lower()
        key = self.model_aliases.get(key, key)
        if key not in self.models:
            names = [*self.models, *self.model_aliases]
            err = UnknownModelError(model_id, list(self.models))
            err.args = (f"unknown model {model_id!r}{nearest_hint(key, names)}",)
            raise err
        return self.models[key]


def check_precision(precision: str) -> Precision:
    key = precision.strip().lower()
    if key not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}{nearest_hint(key, list(PRECISIONS))}")
    return key


def nearest_hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.4)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{hint} (valid: {', '.join(sorted(known))})"


def _read(name: str) -> dict[str, Any]:
    text = resources.files("calibroute.economics").joinpath("data", name).read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ArtifactError(f"economics catalog {name}: expected a mapping")
    return data


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Parse and validate the three shipped catalog files (once per process)."""
    try:
        gpus = [Gpu.model_validate(g) for g in _read("gpus.yaml")["gpus"]]
        models = [Model.model_validate(m) for m in _read("models.yaml")["models"]]
        prices = [ApiPrice.model_validate(p) for p in _read("api_prices.yaml")["prices"]]
    except (ValidationError, KeyError, TypeError) as exc:
        raise ArtifactError(f"economics catalog is invalid: {exc}") from None
    aliases = {a: m.id for m in models for a in m.aliases}
    return Catalog(
        version=str(_read("gpus.yaml")["version"]),
        gpus={g.id: g for g in gpus},
        models={m.id: m for m in models},
        prices={p.id: p for p in prices},
        model_aliases=aliases,
    )
