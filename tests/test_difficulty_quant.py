"""The "quant" feature kind: counts of quantities, operation words and sentences in word problems."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibroute.classify.difficulty import (
    QUANT_NAMES,
    DifficultyModel,
    fit_difficulty,
    quantity_stats,
)
from calibroute.classify.features import HashedFeaturizer
from calibroute.errors import ArtifactError

SMALL = HashedFeaturizer(n_buckets=1 << 10)
PROBLEM = "Kylar buys 16 glasses. One glass costs $5, but every second glass costs only 60% of the price. How much does he pay?"


def counts(text: str) -> dict[str, float]:
    return dict(zip(QUANT_NAMES, np.expm1(quantity_stats([text])[0]).round(3)))


def test_counts_quantities_operations_and_sentences_of_a_word_problem():
    got = counts(PROBLEM)
    assert got["numbers"] == 3 and got["distinct_numbers"] == 3 and got["sentences"] == 3
    assert got["max_number_log"] == pytest.approx(np.log1p(60), abs=1e-3)
    assert got["percent"] == 1 and got["rates"] == 1 and got["money"] == 4 and got["number_words"] == 1


@pytest.mark.parametrize("text", ["", " ", "∑ x² — ünïcödé 🚀", "9" * 5000, "1,2,3,,,9" * 300, "word " * 20000])
def test_any_text_gives_finite_non_negative_counts(text):
    q = quantity_stats([text])
    assert q.shape == (1, len(QUANT_NAMES)) and np.isfinite(q).all() and (q >= 0).all()


def planted(n: int = 300, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Word problems with many quantities are hard; the hashed words carry no signal (digits fold to 0)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        k = int(rng.integers(1, 9))
        texts.append("Sam has " + ", then ".join(f"{rng.integers(1, 99)} apples" for _ in range(k)) + ". How many?")
        labels.append(float(k <= 4))
    return texts, np.array(labels)


def test_quant_features_carry_a_signal_the_other_features_miss():
    texts, labels = planted()
    with_quant = fit_difficulty(texts, labels, features=("stats", "quant"), featurizer=SMALL)
    test, y = planted(120, seed=1)
    assert roc_auc_score(y, with_quant.p_weak_suffices_batch(test)) > 0.95
    assert with_quant.w_quant is not None and with_quant.meta["features"] == ["stats", "quant"]


def test_quant_artifact_round_trips_and_rejects_wrong_shapes(tmp_path):
    texts, labels = planted(120)
    model = fit_difficulty(texts, labels, features=("stats", "hash", "quant"), featurizer=SMALL)
    model.save(tmp_path / "d.npz")
    loaded = DifficultyModel.load(tmp_path / "d.npz")
    assert np.array_equal(loaded.p_weak_suffices_batch(texts[:20]), model.p_weak_suffices_batch(texts[:20]))
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["w_quant"] = arrays["w_quant"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ArtifactError, match="quantity"):
        DifficultyModel.load(tmp_path / "bad.npz")


def test_quantity_counting_stays_cheap_on_long_prompts():
    """Behaviour, not speed: the count only looks at a clipped head and tail of huge prompts."""
    huge = PROBLEM + " filler" * 50000 + " 7 8 9"
    assert counts(huge)["numbers"] == 6  # 3 in the head, 3 in the tail


def test_quant_scoring_needs_no_training_libraries(tmp_path):
    texts, labels = planted(80)
    fit_difficulty(texts, labels, features=("stats", "quant"), featurizer=SMALL).save(tmp_path / "q.npz")
    code = (
        "import sys\n"
        "from calibroute.classify.difficulty import DifficultyModel\n"
        f"DifficultyModel.load({str(tmp_path / 'q.npz')!r}).p_weak_suffices('Sam has 3 apples.')\n"
        "bad = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
