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


def test_numbers_in_handed_over_material_become_one_token():
    from calibroute.classify.features import mark_payload_numbers

    marked = mark_payload_numbers("Extract the total from: Invoice #4471, due 2024-03-02. Total: $1,284.50")
    assert marked.startswith("Extract the total from:")
    assert marked.count("qqnum") == 3 and not any(ch.isdigit() for ch in marked)


@pytest.mark.parametrize(
    "text",
    [
        "Natalia sold 48 clips in April and half as many in May. How many clips did she sell?",  # no instruction head
        "Q: what is 3 + 4?",  # head too short to be an instruction
    ],
)
def test_numbers_outside_handed_over_material_are_kept(text):
    from calibroute.classify.features import mark_payload_numbers

    assert mark_payload_numbers(text) == text


def test_payload_numbers_is_opt_in_and_round_trips():
    text = "Summarize this in one sentence: the council voted 7-2 to spend $340,000."
    plain, marked = HashedFeaturizer(), HashedFeaturizer(payload_numbers=True)
    assert "payload_numbers" not in plain.config()  # artifacts of other estimators keep their exact config
    assert HashedFeaturizer.from_config(marked.config()) == marked
    assert not np.array_equal(plain.sparse(text)[0], marked.sparse(text)[0])
    assert np.array_equal(marked.sparse(text.replace("7-2", "9-1"))[0], marked.sparse(text)[0])
