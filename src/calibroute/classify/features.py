"""Text featurisation shared by the task classifier and the difficulty estimator.

Two kinds of features, both pure numpy at run time and deterministic across processes
(no use of Python's salted ``hash``):

* ``HashedFeaturizer``: hashed word uni/bi-grams + byte-level char n-grams + length buckets,
  as a sparse binary vector, L2-normalised. ``sparse(text)`` gives ``(indices, values)`` for
  fast scoring against a weight matrix; ``featurize(texts)`` gives a scipy CSR matrix for
  training (scipy is imported lazily, it is a train-time dependency).
* ``text_stats(texts)``: a small dense matrix of hand-made statistics (length, digits, LaTeX,
  code markers, question marks...), named by ``STAT_NAMES``.

The API is stable: other modules may rely on it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from scipy.sparse import csr_matrix

# Huge prompts are clipped like the router does: the head carries the instruction, the tail the question.
HEAD_CHARS = 6000
TAIL_CHARS = 2000

_WORD_RE = re.compile(r"\w+|[^\w\s]")
_DIGIT_RE = re.compile(r"\d")
_ASCII_DIGITS = str.maketrans("123456789", "000000000")
_U64 = np.uint64
_PRIME = _U64(0x100000001B3)
_MIX1 = _U64(0xFF51AFD7ED558CCD)
_MIX2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)


def clip_text(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    """Keep the head and the tail of very long text so cost stays bounded."""
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


def normalize(text: str) -> str:
    """Lower-case, digits folded to 0 (numbers generalise), clipped."""
    low = clip_text(text).lower()
    return low.translate(_ASCII_DIGITS) if low.isascii() else _DIGIT_RE.sub("0", low)


# A request that hands over material to work on: a short instruction ("Extract the total from", "Translate to
# German") ending in ':' or a line break, then the payload. Numbers in the payload are data (amounts, dates, IDs),
# numbers in a word problem are the problem; the payload-number token lets the model weigh the two apart.
_PAYLOAD_SPLIT_RE = re.compile(r":\s|\n")
_NUMBER_RE = re.compile(r"[$€£#]?\d(?:[\d,.:/-]*\d)?%?")
PAYLOAD_NUMBER = " qqnum "
_HEAD_WORDS = (3, 30)


def split_payload(text: str) -> tuple[str, str]:
    """``(instruction, payload)`` when the text opens with a 3-30 word instruction ended by ':' or a newline."""
    m = _PAYLOAD_SPLIT_RE.search(text, 0, 400)
    if m is None:
        return text, ""
    head = text[: m.start()]
    if not _HEAD_WORDS[0] <= len(head.split()) <= _HEAD_WORDS[1]:
        return text, ""
    return head, text[m.start() :]


def mark_payload_numbers(text: str) -> str:
    """Each number in the payload becomes one ``qqnum`` token (its digits and format no longer look like math)."""
    head, payload = split_payload(text)
    return head + _NUMBER_RE.sub(PAYLOAD_NUMBER, payload) if payload else text


def _mix(h: np.ndarray, seed: int) -> np.ndarray:
    """A murmur-style finaliser: spreads the rolling hash over all 64 bits."""
    h = h ^ _U64(seed * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
    h = h ^ (h >> _S33)
    h = h * _MIX1
    h = h ^ (h >> _S33)
    h = h * _MIX2
    out: np.ndarray = h ^ (h >> _S33)
    return out


def _char_ngram_hashes(data: np.ndarray, n: int) -> np.ndarray:
    if data.size < n:
        return np.empty(0, dtype=np.uint64)
    m = data.size - n + 1
    h = data[:m].copy()
    for k in range(1, n):
        h = h * _PRIME + data[k : k + m]
    return _mix(h, 1000 + n)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` for int arrays, ~10x faster here (numpy 2's unique is hash-based and slow on small arrays)."""
    s = np.sort(a)
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


@dataclass(frozen=True)
class HashedFeaturizer:
    """Hashed lexical features; the configuration is saved with every artifact that uses it."""

    n_buckets: int = 1 << 18
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    word_bigrams: bool = True
    edge_words: int = 0  # also mark the first/last N words: where the instruction usually sits
    payload_numbers: bool = False  # numbers after a short instruction become one token (``mark_payload_numbers``)

    def config(self) -> dict[str, object]:
        return {
            "n_buckets": self.n_buckets,
            "char_ngrams": list(self.char_ngrams),
            "word_bigrams": self.word_bigrams,
            "edge_words": self.edge_words,
            **({"payload_numbers": True} if self.payload_numbers else {}),
        }

    @classmethod
    def from_config(cls, cfg: dict[str, object]) -> HashedFeaturizer:
        ngrams = cfg.get("char_ngrams", (3, 4, 5))
        assert isinstance(ngrams, (list, tuple))
        return cls(
            n_buckets=int(cfg.get("n_buckets", 1 << 18)),  # type: ignore[call-overload]
            char_ngrams=tuple(int(n) for n in ngrams),
            word_bigrams=bool(cfg.get("word_bigrams", True)),
            edge_words=int(cfg.get("edge_words", 0)),  # type: ignore[call-overload]
            payload_numbers=bool(cfg.get("payload_numbers", False)),
        )

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique bucket indices (int64) and their float32 values (binary, L2-normalised).

        Memoised for the last few texts: the classifier and the difficulty estimator share this
        configuration, so a routed request hashes its prompt once, not twice. Read-only results.
        With ``payload_numbers`` the marked text is hashed by the plain configuration: a prompt without numbers
        in handed-over material still shares that one pass.
        """
        if self.payload_numbers:
            return _sparse_memo(_unmarked(self), _marked(text))
        return _sparse_memo(self, text)

    def _sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        norm = normalize(mark_payload_numbers(text) if self.payload_numbers else text)  # sparse() marks first
        words = _WORD_RE.findall(norm)
        parts: list[np.ndarray] = []
        if words:
            wh = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
            parts.append(_mix(wh, 1))
            if self.word_bigrams and len(words) > 1:
                parts.append(_mix(wh[:-1] * _PRIME + wh[1:], 2))
            if self.edge_words:
                k = min(self.edge_words, len(words))
                parts.append(_mix(wh[:k], 4))
                parts.append(_mix(wh[-k:], 5))
                parts.append(_mix(wh[: k - 1] * _PRIME + wh[1:k], 6))
        padded = " " + " ".join(words) + " "
        data = np.frombuffer(padded.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
        for n in self.char_ngrams:
            parts.append(_char_ngram_hashes(data, n))
        # Length buckets as pseudo-tokens: log2 of word count.
        bucket = min(int(math.log2(len(words) + 1)), 16)
        parts.append(_mix(np.array([bucket], dtype=np.uint64), 3))
        hashes = np.concatenate(parts)
        idx = _sorted_unique((hashes % _U64(self.n_buckets)).astype(np.int64))
        vals = np.full(idx.size, 1.0 / math.sqrt(idx.size), dtype=np.float32)
        idx.flags.writeable = vals.flags.writeable = False
        return idx, vals

    def featurize(self, texts: Sequence[str]) -> csr_matrix:
        """A CSR matrix (len(texts) x n_buckets) for training; needs scipy."""
        from scipy.sparse import csr_matrix

        indptr = [0]
        all_idx: list[np.ndarray] = []
        all_val: list[np.ndarray] = []
        for text in texts:
            idx, vals = self.sparse(text)
            all_idx.append(idx)
            all_val.append(vals)
            indptr.append(indptr[-1] + idx.size)
        indices = np.concatenate(all_idx) if all_idx else np.empty(0, dtype=np.int64)
        values = np.concatenate(all_val) if all_val else np.empty(0, dtype=np.float32)
        return csr_matrix((values, indices, np.asarray(indptr)), shape=(len(texts), self.n_buckets))

    def score(self, text: str, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``x @ weights + bias`` without building the dense vector; weights is (n_buckets, k) float32."""
        idx, vals = self.sparse(text)
        out: np.ndarray = vals @ weights[idx] + bias
        return out


@lru_cache(maxsize=8)
def _marked(text: str) -> str:
    """``mark_payload_numbers``, memoised like the features: the classifier and the example matcher ask for the
    same prompt in one request, and marking a long payload costs as much as a feature-memo lookup many times over."""
    return mark_payload_numbers(text)


@lru_cache(maxsize=4)
def _unmarked(featurizer: HashedFeaturizer) -> HashedFeaturizer:
    """The same configuration without payload marking (it hashes text that ``_marked`` already marked)."""
    return replace(featurizer, payload_numbers=False)


@lru_cache(maxsize=8)
def _sparse_memo(featurizer: HashedFeaturizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    return featurizer._sparse(text)


STAT_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "digit_frac",
    "upper_frac",
    "punct_frac",
    "non_ascii_frac",
    "n_questions",
    "n_lines_log",
    "latex",
    "code",
    "math_ops",
    "list_items",
    "avg_word_len",
)

_LATEX_RE = re.compile(r"\$|\\(?:frac|sqrt|sum|int|cdot|le|ge|begin|mathbb|pi|alpha|theta)")
# The lookahead only skips positions where no branch can start (same matches, ~10x faster).
_CODE_RE = re.compile(
    r"(?=[`dcrf{};#=i])(?:```|\bdef |\bclass |\breturn\b|\bfunction\b|[{};]\s*$|#include|=>|\bimport )", re.MULTILINE
)
_MATHOP_RE = re.compile(r"\d\s*[-+*/^=<>]\s*\d")
_LIST_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)


# For each ASCII code: isalnum, isspace, isdigit, isupper, exactly as Python's str methods answer.
_ASCII_CLASSES = np.array(
    [[chr(i).isalnum(), chr(i).isspace(), chr(i).isdigit(), chr(i).isupper()] for i in range(128)], dtype=np.int64
)


def _stats(text: str) -> list[float]:
    text = clip_text(text)
    n = max(len(text), 1)
    words = text.split()
    nw = max(len(words), 1)
    # Character classes counted with C-level map() passes (the request path runs this per prompt);
    # alnum and space are disjoint, so punctuation is what is left.
    if text.isascii():  # the common case: one table lookup per byte, same answers as the str methods
        alnum, space, digit, upper = _ASCII_CLASSES[np.frombuffer(text.encode("ascii"), dtype=np.uint8)].sum(axis=0).tolist()
        non_ascii = 0
    else:
        alnum, space = sum(map(str.isalnum, text)), sum(map(str.isspace, text))
        digit, upper = sum(map(str.isdigit, text)), sum(map(str.isupper, text))
        non_ascii = sum(map((127).__lt__, map(ord, text)))
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        digit / n,
        upper / n,
        (len(text) - alnum - space) / n,
        non_ascii / n,
        float(min(text.count("?"), 20)),
        math.log1p(text.count("\n")),
        math.log1p(len(_LATEX_RE.findall(text))),
        math.log1p(len(_CODE_RE.findall(text))),
        math.log1p(len(_MATHOP_RE.findall(text))),
        math.log1p(len(_LIST_RE.findall(text))),
        sum(len(w) for w in words) / nw,
    ]


def text_stats(texts: Sequence[str]) -> np.ndarray:
    """A (len(texts), len(STAT_NAMES)) float32 matrix of simple text statistics."""
    return np.asarray([_stats(t) for t in texts], dtype=np.float32).reshape(len(texts), len(STAT_NAMES))


_DEFAULT = HashedFeaturizer()


def featurize(texts: Sequence[str]) -> csr_matrix:
    """Hashed lexical features with the default configuration (CSR, needs scipy)."""
    return _DEFAULT.featurize(texts)


__all__ = [
    "STAT_NAMES",
    "HashedFeaturizer",
    "clip_text",
    "featurize",
    "mark_payload_numbers",
    "normalize",
    "split_payload",
    "text_stats",
]
