"""Train the encoder classifier: the data it learns from, fine-tuning, the head and its temperature.

Training rows: the labelled chat requests and follow-ups (``chat_data.split_chat``: trainable licenses,
minus the dev split and the held-out tests) plus the benchmark sources of the prompt pool (maths, code,
logic, intents, T0 tasks, stories: they still teach what those look like), capped per (source, label)
and taken from the pool's training groups only. The chat sources of the old pool (Arena-Hard,
HelloBench, ExpertQA, awesome-chatgpt-prompts) come from ``chat_labelled`` instead: their labels
follow the class guide. The temperature is fitted on the dev split, which the model never saw.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conversation import Turn
from ..errors import DataError
from .chat_data import ChatRow, ChatSplit, load_chat_requests, load_followups, split_chat
from .corpus import CLASSES, Example, balance, grouped_split, load_pool
from .encoder import ENCODER_HEAD, ENCODER_TOKENIZER, EncoderHead, EncoderTaskClassifier, SentenceEncoder
from .encoder_input import EncoderInput
from .finetune import FinetuneConfig
from .linear import ARTIFACT_DIR

BENCH_SOURCES: tuple[str, ...] = (
    "banking77", "bbh", "gsm8k", "humaneval", "mbpp", "qwen25_math_eval", "t0_p3_templates", "writingprompts",
)  # fmt: skip
POOL_CAP = 300  # rows per (source, label): enough to keep the benchmark tasks, not enough to drown the chat rows
# Real follow-ups mostly stay in their conversation's class (code after code), so trained on them alone the model
# copies the context's class ("Translate it into French" after a story came out OPEN_ENDED 0.97). This many
# self-contained requests are also shown after an unrelated context, keeping their own label: the turn decides
# when it says what it wants; the context only when it does not ("continue", "make it shorter").
CONTEXT_SWAPS = 2000


@dataclass(frozen=True)
class Labelled:
    turn: Turn
    label: str
    source: str


@dataclass
class EncoderData:
    train: list[Labelled]
    split: ChatSplit
    pool_test: list[Example]  # held-out groups of the benchmark sources


def _from_chat(rows: Sequence[ChatRow]) -> list[Labelled]:
    return [Labelled(r.turn, r.label, r.source) for r in rows]


def build_data(data_dir: Path, seed: int = 0, leave_out: str | None = None) -> EncoderData:
    """The training rows and every evaluation split; ``leave_out`` drops one chat source (LOSO)."""
    split = split_chat(load_chat_requests(data_dir), load_followups(data_dir), seed=seed)
    pool = [ex for ex in load_pool(data_dir / "prompts") if ex.source in BENCH_SOURCES]
    if not pool:
        raise DataError(f"no benchmark prompts under {data_dir / 'prompts'}")
    pool_train, pool_test = grouped_split(pool, 0.25, seed=seed)
    train = [r for r in _from_chat(split.train) if r.source != leave_out]
    train += _context_swaps(train, CONTEXT_SWAPS, seed)
    train += [Labelled(Turn(ex.text), ex.label, ex.source) for ex in balance(pool_train, POOL_CAP, seed=seed)]
    return EncoderData(train, split, pool_test)


def _context_swaps(rows: Sequence[Labelled], n: int, seed: int) -> list[Labelled]:
    """``n`` fresh requests (4 to 60 words) paired with another row's context (a real follow-up's, or a request)."""
    rng = random.Random(seed)
    contexts = [r.turn.context for r in rows if r.turn.context]
    fresh = [r for r in rows if r.turn.context is None and 4 <= len(r.turn.text.split()) <= 60]
    picked = rng.sample(fresh, min(n, len(fresh)))
    out = []
    for i, r in enumerate(picked):
        context = contexts[rng.randrange(len(contexts))] if i % 2 and contexts else rng.choice(fresh).turn.text[:600]
        out.append(Labelled(Turn(r.turn.text, context), r.label, r.source))
    return out


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (a 1-D search; no scipy needed)."""
    from .linear import softmax

    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.mean(np.log(p[np.arange(y.size), y] + 1e-12)))

    grid = np.exp(np.linspace(np.log(0.2), np.log(10.0), 400))
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


# Accuracy the router should have on what it does not send to GENERAL. On the shipped model's dev curve 0.90 keeps
# about two thirds of chat traffic on its class route with 2-2.5 % severe misroutes; 0.92 would send 43 % to
# GENERAL (docs/bench-classifier-chat.md has the whole curve, to choose another point).
TARGET_ROUTED_ACCURACY = 0.90


def coverage_curve(proba: np.ndarray, y: np.ndarray, grid: Sequence[float] | None = None) -> list[tuple[float, float, float]]:
    """(threshold, share kept, accuracy of the kept) for each threshold: the coverage-accuracy curve."""
    conf, correct = proba.max(1), proba.argmax(1) == y
    out = []
    for t in grid if grid is not None else np.round(np.arange(0.30, 0.96, 0.01), 2):
        kept = conf >= t
        out.append((float(t), float(kept.mean()), float(correct[kept].mean()) if kept.any() else 1.0))
    return out


def choose_min_confidence(proba: np.ndarray, y: np.ndarray, target: float = TARGET_ROUTED_ACCURACY) -> float:
    """The lowest threshold whose kept predictions reach ``target`` accuracy: most traffic routed, at that accuracy."""
    for t, _, acc in coverage_curve(proba, y):
        if acc >= target:
            return t
    return 0.95


def label_ids(labels: Sequence[str]) -> np.ndarray:
    return np.asarray([CLASSES.index(label) for label in labels], dtype=np.int64)


def train_encoder(
    data: EncoderData,
    out_dir: Path = ARTIFACT_DIR,
    cfg: FinetuneConfig | None = None,
    log: Callable[[str], None] = print,
) -> EncoderTaskClassifier:
    """Fine-tune on ``data.train``, export to ``out_dir``, fit the temperature on the dev split."""
    from .finetune import base_model_dir, finetune

    cfg = cfg or FinetuneConfig()
    tokenizer = out_dir / ENCODER_TOKENIZER
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.write_bytes((base_model_dir() / "tokenizer.json").read_bytes())
    encoder_input = EncoderInput.load(tokenizer)
    onnx_path, w, b, meta = finetune(
        [r.turn for r in data.train], label_ids([r.label for r in data.train]), encoder_input, out_dir, cfg, log=log
    )
    encoder = SentenceEncoder(onnx_path, encoder_input, threads=cfg.threads)
    head = EncoderHead(list(CLASSES), w, b, 1.0, meta)
    dev = data.split.dev
    vectors = encoder.encode([r.turn for r in dev])
    y_dev = label_ids([r.label for r in dev])
    head.temperature = fit_temperature(vectors @ w + b, y_dev)
    chosen = choose_min_confidence(head.proba(vectors), y_dev)
    head.meta.update(temperature_fit_rows=len(dev), min_confidence=chosen, sources=sorted({r.source for r in data.train}))
    head.save(out_dir / ENCODER_HEAD)
    log(f"temperature {head.temperature:.3f}, min_confidence {chosen} on {len(dev)} dev rows; wrote {out_dir}")
    return EncoderTaskClassifier(encoder, head)
