"""Operator-labelled examples (routing.examples): a close match decides the task class."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from stubs import KeywordClassifier, LengthDifficulty

from calibroute import Hints, Router, TaskClass
from calibroute.classify.examples import (
    SHIPPED_FEATURIZER,
    ExampleMatcher,
    featurizer_of,
)
from calibroute.config import load_portfolio, parse_portfolio

DEFAULT = Path(__file__).parents[1] / "src/calibroute/data/default_portfolio.yaml"
INVOICE = "Summarize the invoice and prove the total: 3 x widgets at $12.50, shipping $9.00"


def portfolio_with(examples: dict[str, list[str]], min_similarity: float = 0.8, **routing: object):
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"].update(examples=examples, example_min_similarity=min_similarity, **routing)
    return parse_portfolio(yaml.safe_dump(data), "p.yaml")


def stub_router(examples: dict[str, list[str]], min_similarity: float = 0.8) -> Router:
    return Router(portfolio_with(examples, min_similarity), classifier=KeywordClassifier(), difficulty=LengthDifficulty())


def test_a_matched_example_overrides_a_confident_wrong_class():
    router = stub_router({"SIMPLE": [INVOICE]})
    d = router.decide(prompt=INVOICE.replace("widgets", "gadgets"))  # KeywordClassifier: "prove" -> REASONING 0.9
    assert d.task_class is TaskClass.SIMPLE and d.rule == "example_match" and d.rules == ["example_match"]
    assert d.model == router.portfolio.routes["SIMPLE"].models[0]
    assert 0.8 <= d.confidence < 1.0
    assert 'example "Summarize the invoice and prove the total: 3 x widgets at $…" (' in d.reason
    assert f"similarity {d.confidence:.2f} >= 0.80" in d.reason and "classifier said REASONING 0.90" in d.reason
    assert d.scores["REASONING"] == 0.9  # the classifier's scores are kept


def test_a_near_miss_below_the_threshold_leaves_the_classifier_in_charge():
    prompt = "Prove the invoice total is right: 3 x gadgets at $7.10"
    similarity = float(ExampleMatcher([("SIMPLE", INVOICE)], 0.5).similarities(prompt)[0])
    assert 0.2 < similarity < 0.9
    below = stub_router({"SIMPLE": [INVOICE]}, min_similarity=similarity + 0.01).decide(prompt=prompt)
    assert below.rule == "classified" and below.task_class is TaskClass.REASONING
    at = stub_router({"SIMPLE": [INVOICE]}, min_similarity=similarity).decide(prompt=prompt)
    assert at.rule == "example_match" and at.task_class is TaskClass.SIMPLE


def test_an_example_match_replaces_the_low_confidence_fallback():
    router = stub_router({"OPEN_ENDED": ["Give me three ideas for a team offsite in spring"]})
    assert router.decide(prompt="hello there").rule == "low_confidence"
    d = router.decide(prompt="Give me three ideas for a team offsite in autumn")
    assert d.task_class is TaskClass.OPEN_ENDED and d.rules == ["example_match"]


def test_hints_and_explicit_models_take_precedence_over_examples():
    router = stub_router({"SIMPLE": [INVOICE]})
    hinted = router.decide(prompt=INVOICE, hints=Hints(task_class=TaskClass.OPEN_ENDED))
    assert hinted.rule == "hint_class" and hinted.task_class is TaskClass.OPEN_ENDED and "example" not in hinted.reason
    named = router.decide(prompt=INVOICE, hints=Hints(model="qwen3-32b"))
    assert named.rule == "explicit_model" and named.model == "qwen3-32b"
    assert named.task_class is TaskClass.SIMPLE and named.budget == router.portfolio.routes["SIMPLE"].budget


def test_escalation_still_applies_within_the_matched_route():
    router = stub_router({"REASONING": ["Show this hard lemma about primes holds"]})
    d = router.decide(prompt="Show this hard lemma about primes holds")  # LengthDifficulty: "hard" -> 0.05
    route = router.portfolio.routes["REASONING"]
    assert d.rules == ["example_match", "escalated"] and d.model == route.escalate_to
    assert d.budget == route.escalated_budget and d.confidence == pytest.approx(1.0)


def test_similarities_are_exact_cosines_and_ties_go_to_the_earlier_example():
    texts = ["Translate to German: good morning", "Fix the grammar: he go home", "Translate to German: good morning"]
    matcher = ExampleMatcher([("SIMPLE", texts[0]), ("REASONING", texts[1]), ("OPEN_ENDED", texts[2])], 0.5)
    query = "Translate to German: good evening"

    def dense(text: str) -> np.ndarray:
        idx, vals = SHIPPED_FEATURIZER.sparse(text)
        v = np.zeros(SHIPPED_FEATURIZER.n_buckets)
        v[idx] = vals
        return v

    expected = [float(dense(query) @ dense(t)) for t in texts]
    assert matcher.similarities(query) == pytest.approx(expected, abs=1e-5)
    match = matcher.match(query)
    assert match is not None and match.task_class is TaskClass.SIMPLE and match.example == texts[0]
    assert matcher.similarities("zzzz qqqq").max() < 0.2


def test_decisions_with_examples_are_deterministic():
    examples = {"SIMPLE": [INVOICE, "Fix the grammar: he go home"], "REASONING": ["Solve 3x + 5 = 11"]}
    prompts = [INVOICE, "Fix the grammar: she go home", "Solve 4x + 5 = 13", "Write a poem"]
    first = [stub_router(examples).decide(prompt=p) for p in prompts]
    assert first == [stub_router(examples).decide(prompt=p) for p in prompts]


def test_examples_file_adds_to_inline_examples_relative_to_the_config(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    rows = [{"prompt": "Fix the grammar: he go home", "task_class": "SIMPLE"}, {"prompt": "Solve 3x = 9", "task_class": "REASONING"}]
    (folder / "mine.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"].update(examples={"OPEN_ENDED": ["Write a haiku about rain"]}, examples_file="mine.jsonl")
    (folder / "p.yaml").write_text(yaml.safe_dump(data))
    routing = load_portfolio(folder / "p.yaml").routing
    assert routing.examples_file == folder / "mine.jsonl"
    assert routing.labelled_examples() == [("OPEN_ENDED", "Write a haiku about rain"), *((r["task_class"], r["prompt"]) for r in rows)]


def test_examples_file_may_be_csv(tmp_path):
    (tmp_path / "mine.csv").write_text('prompt,task_class\n"Translate to German: good morning, friends",SIMPLE\n')
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"]["examples_file"] = "mine.csv"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    assert load_portfolio(tmp_path / "p.yaml").routing.labelled_examples() == [("SIMPLE", "Translate to German: good morning, friends")]


def test_custom_classifiers_get_the_shipped_lexical_featurization():
    from calibroute.classify.linear import lexical

    assert featurizer_of(KeywordClassifier()) is SHIPPED_FEATURIZER
    assert featurizer_of(lexical()) == SHIPPED_FEATURIZER  # same config: the prompt is hashed once per request


def test_a_real_misroute_is_fixed_by_a_similar_example():
    """The shipped classifier sends this date conversion to REASONING; one labelled paraphrase fixes it."""
    prompt = "Convert this date to ISO 8601: March 3rd, 2024."
    plain = Router(load_portfolio()).decide(prompt=prompt)
    assert plain.task_class is not TaskClass.SIMPLE
    router = Router(portfolio_with({"SIMPLE": ["Convert this date to ISO 8601: July 14th, 2023."]}, min_similarity=0.7))
    d = router.decide(prompt=prompt)
    assert d.task_class is TaskClass.SIMPLE and d.rule == "example_match"
    assert d.scores == plain.scores


def test_no_examples_means_no_matcher():
    assert Router(load_portfolio(), classifier=KeywordClassifier(), difficulty=LengthDifficulty()).examples is None


def test_routing_with_examples_imports_no_training_libraries(tmp_path):
    f = tmp_path / "p.yaml"
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"]["examples"] = {"SIMPLE": ["Fix the grammar: he go home"]}
    f.write_text(yaml.safe_dump(data))
    code = (
        "import sys\n"
        "from calibroute import Router\n"
        f"d = Router.from_config({str(f)!r}).decide(prompt='Fix the grammar: she go home')\n"
        "assert d.rule == 'example_match', d\n"
        "bad = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
