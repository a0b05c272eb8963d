"""The encoder task classifier: a fine-tuned MiniLM run by onnxruntime, then a linear head.

Run time needs onnxruntime, ``tokenizers`` and numpy (no torch). The ONNX file maps token ids to
a mean-pooled sentence vector; the head (``classifier-encoder.npz``: weights, bias, temperature, meta)
turns it into calibrated class probabilities: ``softmax((v @ W + b + a * lex(text)) / T)`` for a fresh request,
where ``lex`` is a hashed n-gram logistic regression trained on the same rows (``classifier-encoder-lexical.npz``):
the encoder reads meaning from 96 tokens, the n-grams every word of the turn, and the mix (``a`` and ``T`` fitted
on the dev split) is right more often than either. A follow-up is read by the encoder alone, with its own ``T``.
Keeping the head outside the network lets ``calibroute train classifier --extra`` refit it on a team's own labels
without torch.
One thread per session: the gateway's event loop must not fight the classifier for both cores.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..conversation import Turn
from ..errors import ArtifactError
from ..types import Classification, TaskClass
from .base import uncertain
from .encoder_input import EncoderInput
from .linear import ARTIFACT_DIR, LinearArtifact, softmax

ENCODER_ONNX = "classifier-encoder.onnx"
MEMO_SIZE = 2048  # classifications kept per classifier (most recently used)
ENCODER_HEAD = "classifier-encoder.npz"
ENCODER_TOKENIZER = "classifier-encoder-tokenizer.json"  # all-MiniLM-L6-v2's own WordPiece tokenizer
ENCODER_LEXICAL = "classifier-encoder-lexical.npz"  # the hashed n-gram logits mixed into the head's


@dataclass
class LexicalPart:
    """Hashed n-gram logits of fresh requests (no context), to be mixed into the encoder head's.

    Follow-ups stay out: "make it shorter" is whatever it follows, which the turn's words cannot tell;
    the encoder reads those with their context."""

    artifact: LinearArtifact

    def __post_init__(self) -> None:
        if self.artifact.featurizer is None or self.artifact.w_hash is None:
            raise ArtifactError(f"{ENCODER_LEXICAL}: a lexical part needs hashed n-gram weights")

    def logits(self, turns: list[Turn]) -> tuple[np.ndarray, np.ndarray]:
        """(unweighted logits, mask of the rows they apply to); follow-up rows are zero and unmasked."""
        art = self.artifact
        assert art.featurizer is not None and art.w_hash is not None  # checked in __post_init__
        fresh = np.array([t.context is None for t in turns], dtype=bool)
        out = np.zeros((len(turns), len(art.classes)), dtype=np.float32)
        for i in np.flatnonzero(fresh):
            out[i] = art.featurizer.score(turns[i].text, art.w_hash, art.bias)
        return out, fresh


@dataclass
class EncoderHead:
    """``softmax((v @ w + b) / temperature)``, or for rows the lexical part reads
    ``softmax((v @ w + b + lexical_weight * lex) / mixed_temperature)``: each form calibrated on its own."""

    classes: list[str]
    w: np.ndarray  # (dim, k)
    b: np.ndarray  # (k,)
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    lexical_weight: float = 0.0  # 0: the encoder alone, the lexical part is not used
    mixed_temperature: float = 1.0

    def save(self, path: Path) -> None:
        header = {"classes": self.classes, "temperature": self.temperature, "meta": self.meta,
                  "lexical_weight": self.lexical_weight, "mixed_temperature": self.mixed_temperature}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, header=np.array(json.dumps(header)), w=self.w.astype(np.float32), b=self.b.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> EncoderHead:
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                w, b = data["w"].astype(np.float32), data["b"].astype(np.float32)
            head = cls(header["classes"], w, b, float(header["temperature"]), header.get("meta", {}),
                       float(header.get("lexical_weight", 0.0)), float(header.get("mixed_temperature", 1.0)))  # fmt: skip
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"cannot load encoder head {path}: {exc}") from None
        if set(head.classes) - {c.value for c in TaskClass} or w.shape[1:] != (len(head.classes),) or b.shape != w.shape[1:]:
            raise ArtifactError(f"encoder head {path}: bad classes {head.classes} or shapes {w.shape}, {b.shape}")
        if not (head.temperature > 0 and head.mixed_temperature > 0 and head.lexical_weight >= 0):
            raise ArtifactError(f"encoder head {path}: temperatures must be > 0 and lexical_weight >= 0")
        return head

    def proba(self, vectors: np.ndarray, lexical: np.ndarray | None = None, mixed: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities; ``lexical``/``mixed`` as ``LexicalPart.logits`` gives them (all rows mixed if no mask)."""
        z = vectors @ self.w + self.b
        if lexical is None or self.lexical_weight == 0:
            return softmax(z / self.temperature)
        with_lexical = (z + self.lexical_weight * lexical) / self.mixed_temperature
        return softmax(with_lexical if mixed is None else np.where(mixed[:, None], with_lexical, z / self.temperature))


class SentenceEncoder:
    """Token ids -> sentence vectors with onnxruntime; safe to call from several threads."""

    def __init__(self, onnx_path: Path, encoder_input: EncoderInput, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ArtifactError("the encoder classifier needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 (onnxruntime's pybind errors, e.g. InvalidProtobuf, derive from Exception only)
            raise ArtifactError(f"cannot load encoder {onnx_path}: {exc}") from None
        self.input = encoder_input
        self._names = {i.name for i in self.session.get_inputs()}

    def encode(self, turns: list[Turn]) -> np.ndarray:
        """One row per call, as the router runs it. The int8 model quantises its activations per call with one
        scale for the whole input, so a row batched with others (and their padding) comes out slightly different
        (mean |dp| 0.01, 2-4 % of argmaxes flipped): fits and benchmarks must see what a request gets."""
        out = []
        for turn in turns:
            feed = self.input.batch([turn])
            out.append(self.session.run(None, {k: v for k, v in feed.items() if k in self._names})[0])
        if not out:
            width = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, width if isinstance(width, int) else 0), dtype=np.float32)
        return np.vstack(out).astype(np.float32)


class EncoderTaskClassifier:
    """The ``Classifier`` protocol over a sentence encoder and a calibrated linear head."""

    def __init__(self, encoder: SentenceEncoder, head: EncoderHead, lexical: LinearArtifact | None = None) -> None:
        if head.lexical_weight > 0 and lexical is None:
            raise ArtifactError(f"this encoder head mixes in lexical logits: {ENCODER_LEXICAL} is missing")
        if lexical is not None and lexical.classes != head.classes:
            raise ArtifactError(f"{ENCODER_LEXICAL}: classes {lexical.classes} differ from the head's {head.classes}")
        self.encoder = encoder
        self.head = head
        self.lexical = LexicalPart(lexical) if lexical is not None else None
        self.classes = [TaskClass(c) for c in head.classes]
        self._lock = threading.Lock()
        # Agent loops resend the same last user turn with every tool result: classify it once.
        self._memo: OrderedDict[tuple[str, str | None], Classification] = OrderedDict()

    def with_head(self, head: EncoderHead) -> EncoderTaskClassifier:
        """The same encoder (and lexical part) under another head, e.g. one adapted with ``--extra``."""
        return EncoderTaskClassifier(self.encoder, head, self.lexical.artifact if self.lexical else None)

    def lexical_logits(self, turns: list[Turn]) -> tuple[np.ndarray, np.ndarray] | None:
        """``LexicalPart.logits`` when the head mixes them in, else ``None``."""
        return self.lexical.logits(turns) if self.lexical and self.head.lexical_weight > 0 else None

    def proba_turns(self, turns: list[Turn]) -> np.ndarray:
        vectors = self.encoder.encode(turns)
        lexical = self.lexical_logits(turns)
        return self.head.proba(vectors) if lexical is None else self.head.proba(vectors, *lexical)

    def classify(self, text: str, context: str | None = None) -> Classification:
        if not isinstance(text, str):
            text = str(text)
        if not text.strip():
            return uncertain(self.classes)
        key = (text, context or None)
        with self._lock:  # guards the memo only: onnxruntime runs concurrent inferences safely, one core each
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return hit
        p = self.proba_turns([Turn(*key)])[0]
        best = int(np.argmax(p))
        result = Classification(self.classes[best], float(p[best]), {c.value: float(p[i]) for i, c in enumerate(self.classes)})
        with self._lock:
            self._memo[key] = result
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return result


def load_encoder_classifier(directory: Path = ARTIFACT_DIR, head_path: Path | None = None) -> EncoderTaskClassifier:
    """The encoder in ``directory`` with its head (or another head trained on it, e.g. with ``--extra``)."""
    onnx_path, tokenizer = directory / ENCODER_ONNX, directory / ENCODER_TOKENIZER
    head_path = head_path or directory / ENCODER_HEAD
    for path in (onnx_path, tokenizer, head_path):
        if not path.is_file():
            raise ArtifactError(f"classifier artifact missing: {path} (run `calibroute train classifier`)")
    head = EncoderHead.load(head_path)
    trained = head.meta.get("finetune", {})  # the input window the encoder was trained on (older heads: the defaults)
    window = {k: int(trained[k]) for k in ("max_tokens", "context_tokens") if k in trained}
    encoder_input = EncoderInput.load(tokenizer, **window)
    lexical_path = directory / ENCODER_LEXICAL
    lexical = LinearArtifact.load(lexical_path) if lexical_path.is_file() else None
    return EncoderTaskClassifier(SentenceEncoder(onnx_path, encoder_input), head, lexical)


@cache
def encoder() -> EncoderTaskClassifier:
    return load_encoder_classifier()
