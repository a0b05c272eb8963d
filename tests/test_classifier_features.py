"""Shared text features: stable across processes, bounded on huge input, shapes as documented."""

import subprocess
import sys

import numpy as np
import pytest

from calibroute.classify.features import STAT_NAMES, HashedFeaturizer, clip_text, featurize, text_stats


def test_hashed_indices_do_not_depend_on_the_python_hash_seed():
    code = "from calibroute.classify.features import HashedFeaturizer as H; print(H().sparse('Prove it, 42 times!')[0].tolist())"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(outs) == 1
    assert outs.pop().strip() == str(HashedFeaturizer().sparse("Prove it, 42 times!")[0].tolist())


def test_sparse_vector_is_sorted_unique_and_unit_length():
    idx, vals = HashedFeaturizer().sparse("Write a poem about autumn leaves and autumn rain.")
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < HashedFeaturizer().n_buckets
    assert float(np.dot(vals, vals)) == pytest.approx(1.0, rel=1e-5)


def test_digits_are_folded_so_numbers_generalise():
    f = HashedFeaturizer()
    assert np.array_equal(f.sparse("add 12 and 34")[0], f.sparse("add 98 and 76")[0])


def test_huge_text_is_clipped_to_head_and_tail():
    text = "a" * 10_000 + "MIDDLE" + "b" * 10_000
    clipped = clip_text(text)
    assert "MIDDLE" not in clipped and clipped.startswith("a") and clipped.endswith("b")


def test_featurize_and_text_stats_shapes():
    texts = ["", "What is 2 + 2?", "```python\ndef f():\n    return 1\n```", "Prove $\\sqrt{2}$ is irrational"]
    x = featurize(texts)
    assert x.shape == (4, HashedFeaturizer().n_buckets) and x.nnz > 0
    stats = text_stats(texts)
    assert stats.shape == (4, len(STAT_NAMES)) and np.isfinite(stats).all()
    assert stats[2, STAT_NAMES.index("code")] > 0 and stats[3, STAT_NAMES.index("latex")] > 0


def test_featurizer_config_round_trips():
    f = HashedFeaturizer(n_buckets=1 << 12, char_ngrams=(2, 3), word_bigrams=False)
    assert HashedFeaturizer.from_config(f.config()) == f
