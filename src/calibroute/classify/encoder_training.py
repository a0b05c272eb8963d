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
from .encoder import (
    ENCODER_HEAD,
    ENCODER_LEXICAL,
    ENCODER_TOKENIZER,
    EncoderHead,
    EncoderTaskClassifier,
    LexicalPart,
    SentenceEncoder,
)
from .encoder_input import EncoderInput
from .features import HashedFeaturizer
from .finetune import FinetuneConfig
from .linear import ARTIFACT_DIR, LinearArtifact, softmax

BENCH_SOURCES: tuple[str, ...] = (
    "banking77", "bbh", "gsm8k", "humaneval", "mbpp", "qwen25_math_eval", "t0_p3_templates", "writingprompts",
)  # fmt: skip
POOL_CAP = 300  # rows per (source, label): enough to keep the benchmark tasks, not enough to drown the chat rows
# Real follow-ups mostly stay in their conversation's class (code after code), so trained on them alone the model
# copies the context's class ("Translate it into French" after a story came out OPEN_ENDED 0.97). This many
# self-contained requests are also shown after an unrelated context, keeping their own label: the turn decides
# when it says what it wants; the context only when it does not ("continue", "make it shorter").
CONTEXT_SWAPS = 2000
LEXICAL_C = 2.0  # inverse L2 strength of the lexical part's logistic regression
MIX_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.0, 1.01, 0.05), 2))  # lexical weights tried on the dev split


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


# Accuracy the router should have on what it does not send to GENERAL. With one threshold per predicted class this
# keeps about four fifths of chat traffic on its class route with ~1.5 % severe misroutes (docs/bench-classifier-chat.md
# has the curves, to choose another point).
TARGET_ROUTED_ACCURACY = 0.90
THRESHOLD_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.40, 0.96, 0.03), 2))
MAX_SEVERE = 0.02  # severe misroutes allowed on dev, as a share of all requests (the bar is 3 %)
# (true class, routed class) pairs that cost the most: a proof on the cheap tier, an extraction on the reasoning tier.
SEVERE_MISROUTES: frozenset[tuple[str, str]] = frozenset({
    ("REASONING", "SIMPLE"), ("REASONING", "OPEN_ENDED"), ("SIMPLE", "REASONING"), ("OPEN_ENDED", "REASONING"),
    ("GENERAL", "SIMPLE"),
})  # fmt: skip


def coverage_curve(proba: np.ndarray, y: np.ndarray, grid: Sequence[float] | None = None) -> list[tuple[float, float, float]]:
    """(threshold, share kept, accuracy of the kept) for each threshold: the coverage-accuracy curve."""
    conf, correct = proba.max(1), proba.argmax(1) == y
    out = []
    for t in grid if grid is not None else np.round(np.arange(0.30, 0.96, 0.01), 2):
        kept = conf >= t
        out.append((float(t), float(kept.mean()), float(correct[kept].mean()) if kept.any() else 1.0))
    return out


def choose_min_confidence(
    proba: np.ndarray,
    y: np.ndarray,
    target: float = TARGET_ROUTED_ACCURACY,
    grid: Sequence[float] = THRESHOLD_GRID,
    max_severe: float = MAX_SEVERE,
) -> dict[str, float]:
    """One threshold per predicted class: the combination that keeps the most requests on their class route while
    those kept are ``target`` accurate and severe misroutes stay within ``max_severe`` of all requests. Classes
    differ in how precise their confident guesses are (a SIMPLE guess at 0.7 is wrong more often than a REASONING
    one), so one number for all wastes coverage; the severe cap keeps the choice from trading a few costly
    misroutes for coverage (and makes it stable from one training run to the next)."""
    pred, conf = proba.argmax(1), proba.max(1)
    thresholds = np.asarray(grid)
    severe_pairs = {(CLASSES.index(a), CLASSES.index(b)) for a, b in SEVERE_MISROUTES}
    counts = np.zeros((3, len(CLASSES), thresholds.size))  # kept, right, severe per (class, threshold)
    for k in range(len(CLASSES)):
        above = (pred == k)[None, :] & (conf[None, :] >= thresholds[:, None])
        severe_rows = np.array([(int(t), k) in severe_pairs for t in y])
        counts[:, k] = above.sum(1), (above & (y == k)[None, :]).sum(1), (above & severe_rows[None, :]).sum(1)
    axes = np.ix_(*[np.arange(thresholds.size)] * len(CLASSES))  # every combination of one threshold per class
    kept, right, severe = (sum(counts[i, k][axes[k]] for k in range(len(CLASSES))) for i in range(3))
    feasible = (right >= target * np.maximum(kept, 1)) & (severe <= max_severe * y.size)
    if not feasible.any():
        return dict.fromkeys(CLASSES, float(thresholds[-1]))
    best = np.unravel_index(np.argmax(np.where(feasible, kept, -1)), feasible.shape)
    return {c: float(thresholds[i]) for c, i in zip(CLASSES, best, strict=True)}


def fit_lexical(rows: Sequence[Labelled], seed: int = 0) -> LinearArtifact:
    """Hashed n-gram logistic regression on the turns' text, the same rows the encoder learnt from."""
    from .training import fit_logistic

    featurizer = HashedFeaturizer(payload_numbers=True)
    coef, bias = fit_logistic(featurizer.featurize([r.turn.text for r in rows]), label_ids([r.label for r in rows]), LEXICAL_C, seed)
    meta = {"c": LEXICAL_C, "rows": len(rows), "use": "mixed into the encoder head's logits"}
    return LinearArtifact(list(CLASSES), bias.astype(np.float32), 1.0, featurizer, coef.astype(np.float32), None, meta)


def fit_mix(encoder_logits: np.ndarray, lexical_logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(lexical weight, temperature) with the lowest dev negative log-likelihood: calibration and mix in one fit."""
    best = (np.inf, 0.0, 1.0)
    for weight in MIX_GRID:
        z = encoder_logits + weight * lexical_logits
        t = fit_temperature(z, y)
        p = softmax(z / t)
        nll = float(-np.mean(np.log(p[np.arange(y.size), y] + 1e-12)))
        best = min(best, (nll, float(weight), t))
    return best[1], best[2]


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
    encoder_input = EncoderInput.load(tokenizer, cfg.max_tokens, cfg.context_tokens)
    onnx_path, w, b, meta = finetune(
        [r.turn for r in data.train], label_ids([r.label for r in data.train]), encoder_input, out_dir, cfg, log=log
    )
    encoder = SentenceEncoder(onnx_path, encoder_input, threads=cfg.threads)
    return fit_head(encoder, EncoderHead(list(CLASSES), w, b, 1.0, meta), data, out_dir, log)


def fit_head(
    encoder: SentenceEncoder, head: EncoderHead, data: EncoderData, out_dir: Path, log: Callable[[str], None] = print
) -> EncoderTaskClassifier:
    """The lexical part, mix weight, temperatures and ``min_confidence``; writes the head and the lexical file.

    ``head.w``/``head.b`` come from fine-tuning; everything fitted here uses the dev split, never trained on."""
    log("fitting the lexical part")
    lexical = fit_lexical(data.train)
    lexical.save(out_dir / ENCODER_LEXICAL)
    dev = [r.turn for r in data.split.dev]
    y_dev = label_ids([r.label for r in data.split.dev])
    lexical_logits, _ = LexicalPart(lexical).logits([Turn(t.text) for t in dev])
    encoder_logits = encoder.encode(dev) @ head.w + head.b
    weight, mixed_temperature = fit_mix(encoder_logits, lexical_logits, y_dev)
    head = EncoderHead(head.classes, head.w, head.b, fit_temperature(encoder_logits, y_dev), dict(head.meta), weight, mixed_temperature)
    classifier = EncoderTaskClassifier(encoder, head, lexical)
    chosen = choose_min_confidence(classifier.proba_turns(dev), y_dev)
    head.meta.update(temperature_fit_rows=len(dev), min_confidence=chosen, sources=sorted({r.source for r in data.train}))
    head.save(out_dir / ENCODER_HEAD)
    log(f"lexical weight {weight}, temperatures {head.temperature:.3f} / {mixed_temperature:.3f} (mixed), "
        f"min_confidence {chosen} on {len(dev)} dev rows; wrote {out_dir}")  # fmt: skip
    return classifier
