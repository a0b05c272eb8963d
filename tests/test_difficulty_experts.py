"""Domain experts of the difficulty estimator: a gate learned from the text picks per-domain slopes."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibroute.classify.difficulty import DifficultyModel, fit_difficulty
from calibroute.classify.difficulty_data import (
    LabelledSet,
    near_dup_keys,
    training_domains,
    training_rows,
)
from calibroute.classify.features import HashedFeaturizer, text_stats
from calibroute.errors import ArtifactError, InputError

SMALL = HashedFeaturizer(n_buckets=1 << 10)
TOPIC = {"math": "apples", "trivia": "capital", "code": "function"}


def opposite_domains(n: int = 450, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """'tricky' marks a hard prompt in math and code but an easy one in trivia: one shared slope cannot fit both."""
    rng = np.random.default_rng(seed)
    texts, labels, domains = [], [], []
    for i in range(n):
        domain = ("math", "trivia", "code")[i % 3]
        tricky = bool(rng.random() < 0.4)
        filler = " ".join(rng.choice(["a", "b", "c", "d"], 4))
        texts.append(f"{TOPIC[domain]} question {i} {'tricky' if tricky else 'plain'} {filler}")
        labels.append(float(tricky) if domain == "trivia" else float(not tricky))
        domains.append(domain)
    return texts, np.array(labels), domains


@pytest.fixture(scope="module")
def fitted() -> tuple[DifficultyModel, DifficultyModel]:
    texts, labels, domains = opposite_domains()
    return fit_difficulty(texts, labels, featurizer=SMALL, domains=domains), fit_difficulty(texts, labels, featurizer=SMALL)


def test_experts_learn_opposite_slopes_that_a_shared_model_cannot(fitted):
    experts, shared = fitted
    texts, labels, _ = opposite_domains(150, seed=1)
    assert roc_auc_score(labels, experts.p_weak_suffices_batch(texts)) > 0.95
    assert roc_auc_score(labels, shared.p_weak_suffices_batch(texts)) < 0.9


def test_gate_infers_the_domain_from_the_text_alone(fitted):
    experts = fitted[0].experts
    assert experts is not None and experts.names == ("code", "math", "trivia")
    texts, _, domains = opposite_domains(60, seed=2)
    model = fitted[0]
    assert model.featurizer is not None
    stats = (text_stats(texts) - model.stats_mean) / model.stats_scale
    gates = experts.gates(stats.astype(np.float64), [model.featurizer.sparse(t) for t in texts])
    assert np.allclose(gates.sum(axis=1), 1.0, atol=0.2)
    assert [experts.names[k] for k in gates.argmax(axis=1)] == domains


def test_expert_artifact_round_trips_with_identical_predictions(fitted, tmp_path):
    model = fitted[0]
    model.save(tmp_path / "d.npz")
    loaded = DifficultyModel.load(tmp_path / "d.npz")
    texts, _, _ = opposite_domains(40, seed=3)
    assert np.array_equal(loaded.p_weak_suffices_batch(texts), model.p_weak_suffices_batch(texts))
    assert loaded.experts is not None and loaded.experts.names == model.experts.names
    assert loaded.meta["gate_c"] == 1.0


def test_fitting_experts_twice_gives_identical_weights():
    texts, labels, domains = opposite_domains(90)
    a = fit_difficulty(texts, labels, featurizer=SMALL, domains=domains)
    b = fit_difficulty(texts, labels, featurizer=SMALL, domains=domains)
    assert a.experts is not None and b.experts is not None
    assert np.array_equal(a.experts.expert_w, b.experts.expert_w) and np.array_equal(a.experts.gate_w, b.experts.gate_w)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"domains": ["only"] * 4},  # one domain: nothing to gate
        {"domains": ["a", "b", "a"]},  # not one per text
        {"domains": ["a", "b", "a", "b"], "features": ("stats",)},  # experts live on the hashed features
    ],
)
def test_bad_domain_input_raises_input_error(kwargs):
    with pytest.raises(InputError):
        fit_difficulty(["one prompt", "two prompts", "three", "four"], np.array([0.0, 1.0, 0.0, 1.0]), featurizer=SMALL, **kwargs)


def test_artifact_with_mismatched_expert_weights_is_rejected(fitted, tmp_path):
    model = fitted[0]
    model.save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["expert_w"] = arrays["expert_w"][:-5]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ArtifactError, match="domain expert"):
        DifficultyModel.load(tmp_path / "bad.npz")


def test_training_domains_follow_training_rows_order():
    def one(name: str, texts: list[str], test: list[bool]) -> LabelledSet:
        n = len(texts)
        return LabelledSet(name, texts, np.ones(n), np.array(test), np.ones((n, 1)), np.ones(n), ("w",), "s", None, near_dup_keys(texts))

    sets = [one("a", ["x1", "x2", "x3"], [False, True, False]), one("b", ["y1", "y2"], [False, False])]
    texts, _, _ = training_rows(sets)
    assert list(zip(texts, training_domains(sets))) == [("x1", "a"), ("x3", "a"), ("y1", "b"), ("y2", "b")]


def test_model_without_experts_saves_no_expert_header_or_arrays(tmp_path):
    """Keeps artifacts built without the new options byte-identical to older builds."""
    import json

    texts, labels, _ = opposite_domains(60)
    fit_difficulty(texts, labels, featurizer=SMALL).save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as data:
        assert set(data.files) == {"header", "stats_mean", "stats_scale", "w_stats", "quantiles", "w_hash"}
        assert "domains" not in json.loads(str(data["header"]))
