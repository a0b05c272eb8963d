"""Optional parts of the difficulty estimator: word-problem quantity features and per-domain experts.

Neither is used by the shipped artifact (``calibroute train difficulty``'s default); both are
kept, loadable and tested so that bench/difficulty_crossfit.py reproduces the session-3
comparison (docs/bench-difficulty.md): they did not improve GSM8K beyond noise, and the experts
lifted dcrouter but cost RouterArena.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArtifactError, InputError
from .features import clip_text

GATE_MIN = 0.05  # domain gates below this are treated as 0 (fewer active experts, faster training)
N_FOLD = 1 << 12  # hashed buckets folded to this many for the domain gate


# Word-problem structure (the "quant" feature kind): how many quantities and operations a prompt
# asks the model to juggle. Counted over one tokenisation of the (clipped) lower-cased text.
_QUANT_WORDS: dict[str, tuple[str, ...]] = {
    "number_words": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                     "fifteen", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "dozen"),
    "multiples": ("times", "twice", "double", "doubled", "doubles", "triple", "tripled", "half", "halves", "third", "quarter"),
    "rates": ("each", "every", "per", "hourly", "daily", "weekly", "monthly"),
    "percent": ("%", "percent", "percentage"),
    "compare": ("than",),
    "remaining": ("left", "remain", "remains", "remaining", "rest", "spend", "spent", "gave", "lost", "ate", "sold"),
    "totals": ("total", "altogether", "combined", "sum"),
    "average": ("average", "mean", "ratio", "proportion", "rate"),
    "money": ("$", "dollar", "dollars", "cent", "cents", "price", "cost", "costs", "profit", "discount", "interest"),
    "time_units": ("second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month",
                   "months", "year", "years"),
}
QUANT_NAMES: tuple[str, ...] = ("numbers", "distinct_numbers", "max_number_log", "sentences", *_QUANT_WORDS)
_QUANT_KIND = {w: QUANT_NAMES.index(kind) for kind, words in _QUANT_WORDS.items() for w in words}
_QUANT_TOKEN_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|[a-z]+|[%$]|[.!?](?=\s|$)")
QUANT_HEAD, QUANT_TAIL = 1500, 500  # word problems are short; this bounds the cost on long prompts


def quantity_stats(texts: Sequence[str]) -> np.ndarray:
    """A (len(texts), len(QUANT_NAMES)) float32 matrix: log1p counts of quantities, operation words and sentences."""
    out = np.zeros((len(texts), len(QUANT_NAMES)), dtype=np.float32)
    for i, text in enumerate(texts):
        counts = np.zeros(len(QUANT_NAMES))
        numbers: list[float] = []
        for tok, n in Counter(_QUANT_TOKEN_RE.findall(clip_text(text, QUANT_HEAD, QUANT_TAIL).lower())).items():
            if tok[0].isdigit():
                counts[0] += n
                numbers.append(float(tok.replace(",", "")))
            elif tok in ".!?":
                counts[3] += n
            elif tok in _QUANT_KIND:
                counts[_QUANT_KIND[tok]] += n
        counts[1] = len(numbers)
        counts[2] = math.log1p(min(max(numbers, default=0.0), 1e12))
        out[i] = np.log1p(counts)
    return out


def f16(a: np.ndarray) -> np.ndarray:
    """Weights as they will be saved (float16), so a fitted model scores like its reloaded artifact."""
    out: np.ndarray = np.asarray(a).astype(np.float16).astype(np.float32)
    return out


@dataclass
class DomainExperts:
    """Per-dataset corrections, gated by which dataset the prompt looks like (from its own features).

    The router never sees a dataset name, but a prompt's text tells GSM8K from MMLU almost
    perfectly. A softmax *gate* over ``[dense, hashed n-grams mod n_fold]`` (dense: the
    standardised stats, plus the quantity counts when the model uses them) gives P(domain | text);
    each domain adds its own intercept and slopes on the dense features, weighted by its gate
    probability (gates below ``GATE_MIN`` count as 0). So a GSM8K word problem is scored by the
    shared model plus a GSM8K-only correction.
    """

    names: tuple[str, ...]
    n_dense: int
    n_fold: int
    gate_w: np.ndarray  # (n_dense + n_fold, D)
    gate_b: np.ndarray  # (D,)
    expert_w: np.ndarray  # (n_dense + 1, D): last row is each domain's intercept

    def __post_init__(self) -> None:
        d, rows = len(self.names), self.n_dense + self.n_fold
        if self.gate_w.shape != (rows, d) or self.gate_b.shape != (d,) or self.expert_w.shape != (self.n_dense + 1, d):
            raise ArtifactError("difficulty artifact: domain expert weights do not match their configuration")

    def gates(self, dense: np.ndarray, sparse: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(n, D) gate probabilities, small ones zeroed, from the standardised dense features and featurizer output."""
        z = dense @ self.gate_w[: self.n_dense] + self.gate_b
        for i, (idx, vals) in enumerate(sparse):
            z[i] += vals @ self.gate_w[self.n_dense + idx % self.n_fold]
        z -= z.max(axis=1, keepdims=True)
        g = np.exp(z)
        g /= g.sum(axis=1, keepdims=True)
        out: np.ndarray = np.where(g < GATE_MIN, 0.0, g)
        return out

    def logits(self, dense: np.ndarray, sparse: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        e = dense @ self.expert_w[: self.n_dense] + self.expert_w[-1]
        out: np.ndarray = (self.gates(dense, sparse) * e).sum(axis=1)
        return out


def fit_experts(
    dense: np.ndarray, x_hash: Any, domains: Sequence[str], w: np.ndarray, gate_c: float, n_fold: int
) -> tuple[DomainExperts, Any]:
    """Fit the domain gate on the training rows and build the gated expert design block."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    names = tuple(sorted(set(domains)))
    if len(names) < 2:
        raise InputError("domain experts need at least two distinct domains")
    folded = csr_matrix((x_hash.data.copy(), x_hash.indices % n_fold, x_hash.indptr.copy()), shape=(x_hash.shape[0], n_fold))
    folded.sum_duplicates()
    f = hstack([csr_matrix(dense), folded]).tocsr()
    d = np.searchsorted(names, list(domains))
    gate = LogisticRegression(C=gate_c, max_iter=3000, tol=1e-6).fit(f, d, sample_weight=w * (w.size / w.sum()))
    coef, bias = gate.coef_, gate.intercept_
    if len(names) == 2:  # sklearn's binary form: one logit; as a softmax over two, +-half of it
        coef, bias = np.vstack([-coef / 2, coef / 2]), np.r_[-bias / 2, bias / 2]
    n_dense = dense.shape[1]
    experts = DomainExperts(names, n_dense, n_fold, f16(coef.T), bias.astype(np.float32), np.zeros((n_dense + 1, len(names)), np.float32))
    z = np.asarray(f @ experts.gate_w) + experts.gate_b
    g = np.exp(z - z.max(axis=1, keepdims=True))
    g /= g.sum(axis=1, keepdims=True)
    g = np.where(g < GATE_MIN, 0.0, g)
    d1 = np.hstack([dense, np.ones((dense.shape[0], 1))])
    return experts, csr_matrix(np.hstack([g[:, [k]] * d1 for k in range(len(names))]))
