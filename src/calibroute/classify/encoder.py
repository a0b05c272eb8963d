"""The encoder task classifier: a fine-tuned MiniLM run by onnxruntime, then a linear head.

Run time needs onnxruntime, ``tokenizers`` and numpy (no torch). The ONNX file maps token ids to
a mean-pooled sentence vector; the head (``classifier-encoder.npz``: weights, bias, temperature, meta)
turns it into calibrated class probabilities: ``softmax((v @ W + b) / T)``. Keeping the head outside
the network lets ``calibroute train classifier --extra`` refit it on a team's own labels without torch.
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
from .linear import ARTIFACT_DIR, softmax

ENCODER_ONNX = "classifier-encoder.onnx"
MEMO_SIZE = 2048  # classifications kept per classifier (most recently used)
ENCODER_HEAD = "classifier-encoder.npz"
ENCODER_TOKENIZER = "classifier-encoder-tokenizer.json"  # all-MiniLM-L6-v2's own WordPiece tokenizer


@dataclass
class EncoderHead:
    classes: list[str]
    w: np.ndarray  # (dim, k)
    b: np.ndarray  # (k,)
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        header = {"classes": self.classes, "temperature": self.temperature, "meta": self.meta}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, header=np.array(json.dumps(header)), w=self.w.astype(np.float32), b=self.b.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> EncoderHead:
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                w, b = data["w"].astype(np.float32), data["b"].astype(np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"cannot load encoder head {path}: {exc}") from None
        head = cls(header["classes"], w, b, float(header["temperature"]), header.get("meta", {}))
        if set(head.classes) - {c.value for c in TaskClass} or w.shape[1:] != (len(head.classes),) or b.shape != w.shape[1:]:
            raise ArtifactError(f"encoder head {path}: bad classes {head.classes} or shapes {w.shape}, {b.shape}")
        if not head.temperature > 0:
            raise ArtifactError(f"encoder head {path}: temperature must be > 0")
        return head

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        return softmax((vectors @ self.w + self.b) / self.temperature)


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

    def encode(self, turns: list[Turn], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(turns), batch_size):
            feed = self.input.batch(turns[start : start + batch_size])
            out.append(self.session.run(None, {k: v for k, v in feed.items() if k in self._names})[0])
        return np.vstack(out).astype(np.float32)


class EncoderTaskClassifier:
    """The ``Classifier`` protocol over a sentence encoder and a calibrated linear head."""

    def __init__(self, encoder: SentenceEncoder, head: EncoderHead) -> None:
        self.encoder = encoder
        self.head = head
        self.classes = [TaskClass(c) for c in head.classes]
        self._lock = threading.Lock()
        # Agent loops resend the same last user turn with every tool result: classify it once.
        self._memo: OrderedDict[tuple[str, str | None], Classification] = OrderedDict()

    def proba_turns(self, turns: list[Turn]) -> np.ndarray:
        return self.head.proba(self.encoder.encode(turns))

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
    encoder_input = EncoderInput.load(tokenizer)
    return EncoderTaskClassifier(SentenceEncoder(onnx_path, encoder_input), EncoderHead.load(head_path))


@cache
def encoder() -> EncoderTaskClassifier:
    return load_encoder_classifier()
