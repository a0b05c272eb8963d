"""The difficulty estimator: probabilities, determinism, threshold calibration, artifacts, held-out signal."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from calibroute.classify import DIFFICULTY, DifficultyEstimator, load_difficulty
from calibroute.classify.difficulty import DifficultyModel, default, fit_difficulty
from calibroute.classify.difficulty_data import LabelledSet, drop_leaks, hash_heldout, labelled_set, near_dup_keys, pair_labels
from calibroute.classify.difficulty_train import reference_prompts
from calibroute.classify.features import HashedFeaturizer
from calibroute.cli import app
from calibroute.datasets import data_root
from calibroute.errors import ArtifactError, DataError, InputError

SMALL = HashedFeaturizer(n_buckets=1 << 10)
ODD_TEXTS = ["", " ", "hi", "∑ x² — ünïcödé 🚀", "word " * 5000, "```python\ndef f(x):\n    return x\n```", "0" * 20000]


def _data_root():
    try:
        return data_root()
    except DataError as exc:
        pytest.skip(f"shared data missing: {exc}")


def synthetic(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Prompts whose label is planted in a word: 'olympiad' prompts need the strong model."""
    rng = np.random.default_rng(seed)
    topics = ["algebra", "poems", "history", "cooking", "travel", "physics", "code", "music"]
    texts, labels = [], []
    for i in range(n):
        hard = bool(rng.random() < 0.3)
        words = " ".join(rng.choice(topics, size=6))
        texts.append(f"{'olympiad proof' if hard else 'quick question'} {i}: {words}?")
        labels.append(0.0 if hard else 1.0)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def small_model() -> DifficultyModel:
    texts, labels = synthetic()
    return fit_difficulty(texts, labels, featurizer=SMALL)


def test_shipped_estimator_is_registered_and_satisfies_the_protocol():
    assert "default" in DIFFICULTY
    assert isinstance(load_difficulty("default"), DifficultyEstimator)


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_probability_is_in_unit_interval_for_any_text(text):
    p = default().p_weak_suffices(text)
    assert isinstance(p, float) and 0.0 <= p <= 1.0


def test_same_text_gives_the_same_probability_alone_batched_and_reloaded(tmp_path):
    texts = ["Prove that sqrt(2) is irrational.", "Write a haiku about rain.", "What is the capital of France?"]
    model = default()
    single = [model.p_weak_suffices(t) for t in texts]
    assert model.p_weak_suffices_batch(texts).tolist() == single
    model.save(tmp_path / "d.npz")
    assert DifficultyModel.load(tmp_path / "d.npz").p_weak_suffices_batch(texts).tolist() == single


def test_threshold_grows_with_the_strong_share():
    model = default()
    shares = np.linspace(0.0, 1.0, 41)
    thresholds = np.array([model.threshold_for_share(s) for s in shares])
    assert np.all(np.diff(thresholds) > 0)
    assert thresholds[0] == 0.0 and thresholds[-1] == 1.0


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_share_outside_unit_interval_is_rejected(share):
    with pytest.raises(InputError):
        default().threshold_for_share(share)


@pytest.mark.parametrize("share", [0.05, 0.2, 0.3, 0.5, 0.8])
def test_fitted_threshold_sends_the_target_share_of_its_reference_set(small_model, share):
    ref, _ = synthetic(600, seed=3)
    model = small_model.with_reference(ref)
    p = model.p_weak_suffices_batch(ref)
    assert abs(np.mean(p < model.threshold_for_share(share)) - share) <= 0.01
    assert model.strong_share_at(model.threshold_for_share(share)) == pytest.approx(share, abs=0.01)


def test_shipped_threshold_hits_the_target_share_on_the_reference_set():
    ref = reference_prompts(_data_root() / "prompts")
    p = default().p_weak_suffices_batch(ref)
    for share in (0.1, 0.3, 0.5):
        assert abs(np.mean(p < default().threshold_for_share(share)) - share) < 0.01


def test_fit_learns_a_planted_signal_on_held_out_prompts(small_model):
    texts, labels = synthetic(200, seed=1)
    p = small_model.p_weak_suffices_batch(texts)
    assert roc_auc_score(labels, p) > 0.95
    assert p[labels == 0].mean() < p[labels == 1].mean()


def test_fitting_twice_gives_identical_weights():
    texts, labels = synthetic(150)
    a = fit_difficulty(texts, labels, featurizer=SMALL)
    b = fit_difficulty(texts, labels, featurizer=SMALL)
    assert np.array_equal(a.w_hash, b.w_hash) and a.bias == b.bias and np.array_equal(a.quantiles, b.quantiles)


def test_soft_labels_and_weights_are_accepted():
    texts, labels = synthetic(150)
    soft = np.clip(labels * 0.8 + 0.1, 0, 1)
    model = fit_difficulty(texts, soft, np.linspace(0.5, 2.0, len(texts)), features=("stats",))
    assert model.w_hash is None and 0.0 <= model.p_weak_suffices("quick question") <= 1.0


@pytest.mark.parametrize(
    ("labels", "kwargs"),
    [
        (np.array([0.0, 1.5]), {}),
        (np.array([0.0, np.nan]), {}),
        (np.array([1.0, 1.0]), {}),
        (np.array([0.0]), {}),
        (np.array([0.0, 1.0]), {"features": ("hash",)}),
        (np.array([0.0, 1.0]), {"features": ("stats", "bogus")}),
    ],
)
def test_bad_training_input_raises_input_error(labels, kwargs):
    with pytest.raises(InputError):
        fit_difficulty(["a prompt", "another prompt"], labels, featurizer=SMALL, **kwargs)


def test_trained_artifact_round_trips_with_the_same_predictions(small_model, tmp_path):
    path = tmp_path / "difficulty.npz"
    small_model.save(path)
    loaded = DifficultyModel.load(path)
    texts, _ = synthetic(50, seed=2)
    assert np.array_equal(loaded.p_weak_suffices_batch(texts), small_model.p_weak_suffices_batch(texts))
    assert loaded.threshold_for_share(0.3) == small_model.threshold_for_share(0.3)
    assert loaded.meta["features"] == ["stats", "hash"]


def test_corrupt_missing_or_pickled_artifact_raises_artifact_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ArtifactError):
        DifficultyModel.load(tmp_path / "bad.npz")
    with pytest.raises(ArtifactError, match="missing"):
        DifficultyModel.load(tmp_path / "nowhere.npz")
    np.savez(tmp_path / "pickled.npz", header=np.array([{"bias": 0.0}], dtype=object), w_stats=np.zeros(13))
    with pytest.raises(ArtifactError):
        DifficultyModel.load(tmp_path / "pickled.npz")


def test_both_wrong_pairs_count_as_weak_suffices_or_are_dropped():
    weak = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
    strong = np.array([1.0, 0.0, 1.0, 1.0])
    assert pair_labels(weak, strong, "weak")[:3].tolist() == [0.5, 1.0, 0.5]
    dropped = pair_labels(weak, strong, "drop")
    assert dropped[0] == 0.5 and np.isnan(dropped[1]) and np.isnan(dropped[3])


def _set(name: str, texts: list[str], test: list[bool]) -> LabelledSet:
    n = len(texts)
    return LabelledSet(name, texts, np.ones(n), np.array(test), np.ones((n, 1)), np.ones(n), ("w",), "s", None, near_dup_keys(texts))


def test_training_copies_of_another_datasets_held_out_prompts_are_dropped():
    question = "Janet has three apples and buys " + "two more apples at the market " * 6 + "how many now?"
    a = _set("a", [question, "unrelated held-in prompt"], [True, False])
    b = _set("b", [question.upper() + "  ", "another prompt", "a held-out one"], [False, False, True])
    a2, b2 = drop_leaks([a, b])
    assert b2.rows(False).tolist() == [1] and a2.rows(False).tolist() == [1]
    assert b2.rows(True).tolist() == [2]


def test_hash_heldout_is_a_stable_fifth_of_prompts():
    texts = [f"prompt number {i}" for i in range(5000)]
    mask = hash_heldout(texts)
    assert np.array_equal(mask, hash_heldout(list(texts)))
    assert 0.17 < mask.mean() < 0.23


@pytest.mark.parametrize(("name", "floor"), [("routellm-gsm8k", 0.56), ("routerbench", 0.56), ("dcrouter", 0.62)])
def test_shipped_estimator_beats_chance_on_held_out_prompts(name, floor):
    s = labelled_set(name, _data_root())
    idx = s.rows(True)
    p = default().p_weak_suffices_batch([s.texts[i] for i in idx])
    weak, strong = s.weak_scores[idx, 0], s.strong_scores[idx]
    ok = ~np.isnan(weak) & ~np.isnan(strong)
    assert roc_auc_score((weak[ok] >= strong[ok]).astype(int), p[ok]) > floor


def test_estimator_does_not_import_torch_or_training_libraries():
    code = (
        "import sys\n"
        "from calibroute.classify import load_difficulty\n"
        "est = load_difficulty('default')\n"
        "est.p_weak_suffices('prove that sqrt(2) is irrational'); est.threshold_for_share(0.3)\n"
        "bad = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--both-wrong", "maybe"], "--both-wrong"),
        (["--c", "0"], "--c"),
        (["--feature", "bogus"], "known features"),
        ([], "not found"),  # an empty --data folder
    ],
)
def test_cli_rejects_bad_options_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", "difficulty", "--data", str(tmp_path), "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
