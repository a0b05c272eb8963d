"""Operator-labelled examples: a prompt close enough to one of your own labelled requests takes its class.

The semantic-router idea (``Route(name, utterances=[...], score_threshold=...)``) on calibroute's own
features: every example is featurized with the lexical classifier's hashed n-gram featurizer
(``features.HashedFeaturizer.sparse``, memoised, so a routed prompt is hashed once for the classifier and
the matcher), L2-normalised; the prompt's cosine similarity to every example comes from an inverted
index over the hashed buckets the examples use, so a lookup costs in proportion to the postings the
prompt's buckets hit, not to the number of examples times the vocabulary. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import RoutingSettings
from ..errors import ConfigError
from ..types import ExampleMatch, TaskClass
from .features import HashedFeaturizer

# The shipped lexical classifier's featurization (classifier-lexical.npz); used when the classifier in
# use has no hashed featurizer (the embedding variant, a custom classifier).
SHIPPED_FEATURIZER = HashedFeaturizer(payload_numbers=True)
SIMILARITY_TOLERANCE = 1e-5


def featurizer_of(classifier: object) -> HashedFeaturizer:
    """The classifier's own hashed featurizer when it has one (shared memo), else the shipped configuration."""
    feat = getattr(getattr(classifier, "artifact", None), "featurizer", None)
    return feat if isinstance(feat, HashedFeaturizer) else SHIPPED_FEATURIZER


class ExampleMatcher:
    """Nearest labelled example by cosine similarity; deterministic (ties go to the earlier example)."""

    def __init__(
        self,
        examples: Sequence[tuple[str, str]],
        min_similarity: float,
        featurizer: HashedFeaturizer = SHIPPED_FEATURIZER,
    ) -> None:
        if not examples:
            raise ConfigError("an example matcher needs at least one example")
        self.featurizer = featurizer
        self.min_similarity = float(min_similarity)
        self.texts = [text for _, text in examples]
        self.classes = [TaskClass(cls) for cls, _ in examples]
        rows = [featurizer.sparse(text) for text in self.texts]
        # Features are binary and L2-normalised (every value of a text is 1/sqrt(its bucket count)), so a cosine
        # is (shared buckets) x (the prompt's value) x (the example's value): the index only needs bucket -> examples.
        self._example_value = np.array([vals[0] if vals.size else 0.0 for _, vals in rows], dtype=np.float64)
        buckets = np.concatenate([idx for idx, _ in rows])
        owner = np.repeat(np.arange(len(rows), dtype=np.intp), [idx.size for idx, _ in rows])
        order = np.argsort(buckets, kind="stable")
        buckets, self._postings = buckets[order], owner[order]
        # The inverted index: the buckets any example uses (sorted) and where each one's postings start.
        self._vocab, starts = np.unique(buckets, return_index=True)
        self._starts = starts.astype(np.intp)
        self._lens = np.diff(np.append(self._starts, buckets.size)).astype(np.intp)

    def __len__(self) -> int:
        return len(self.texts)

    def similarities(self, text: str) -> np.ndarray:
        """Cosine similarity of ``text`` to every example, in example order (float32)."""
        idx, vals = self.featurizer.sparse(text)
        pos = np.searchsorted(self._vocab, idx)
        pos[pos == self._vocab.size] = 0
        pos = pos[self._vocab[pos] == idx]
        starts, lens = self._starts[pos], self._lens[pos]
        total = int(lens.sum())
        if total == 0:
            return np.zeros(len(self.texts), dtype=np.float32)
        # Every posting of every hit bucket, gathered without a Python loop.
        offsets = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        shared = np.bincount(self._postings[offsets], minlength=len(self.texts))
        sims: np.ndarray = (shared * (float(vals[0]) * self._example_value)).astype(np.float32)
        return sims

    def match(self, text: str) -> ExampleMatch | None:
        """The most similar example if its similarity reaches ``min_similarity``, else None."""
        sims = self.similarities(text)
        best = int(np.argmax(sims))
        similarity = float(sims[best])
        if similarity + SIMILARITY_TOLERANCE < self.min_similarity:  # float32 sums: an exact copy scores 0.99999
            return None
        return ExampleMatch(self.classes[best], min(1.0, similarity), self.texts[best], self.min_similarity)


def matcher_from_settings(routing: RoutingSettings, classifier: object = None) -> ExampleMatcher | None:
    """The portfolio's example matcher (None without examples), on the classifier's featurization."""
    examples = routing.labelled_examples()
    if not examples:
        return None
    return ExampleMatcher(examples, routing.example_min_similarity, featurizer_of(classifier))
