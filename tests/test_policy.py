import pytest

from calibroute.config import DEFAULT_MIN_CONFIDENCE, Budget, load_portfolio
from calibroute.errors import UnknownModelError
from calibroute.policy import cap_budget, decide, rung_shares
from calibroute.types import Classification, Hints, TaskClass

PORTFOLIO = load_portfolio()


def cls(task: TaskClass, conf: float) -> Classification:
    return Classification(task, conf, {task.value: conf})


def test_confident_class_takes_its_route_first_model_and_budget():
    d = decide(PORTFOLIO, cls(TaskClass.REASONING, 0.95), p_weak=0.9, threshold=0.3, input_tokens=100)
    route = PORTFOLIO.routes["REASONING"]
    assert (d.model, d.fallbacks, d.budget, d.rule) == (route.models[0], route.models[1:], route.budget, "classified")


def test_low_confidence_falls_back_to_general_not_a_guess():
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.4), p_weak=0.9, threshold=0.3, input_tokens=100)
    assert d.task_class is TaskClass.GENERAL and d.rule == "low_confidence"
    assert d.model == PORTFOLIO.routes["GENERAL"].models[0]


def test_escalates_when_cheaper_model_unlikely_to_suffice():
    d = decide(PORTFOLIO, cls(TaskClass.REASONING, 0.95), p_weak=0.1, threshold=0.3, input_tokens=100)
    route = PORTFOLIO.routes["REASONING"]
    assert d.model == route.escalate_to and d.rule == "escalated"
    assert d.budget == route.escalated_budget
    assert route.models[0] in d.fallbacks


def test_low_confidence_then_escalation_keeps_both_rules():
    """The safe GENERAL route can still escalate; the decision must say that both fired."""
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.4), p_weak=0.05, threshold=0.3, input_tokens=100)
    assert d.task_class is TaskClass.GENERAL and d.model == PORTFOLIO.routes["GENERAL"].escalate_to
    assert d.rule == "escalated" and d.rules == ["low_confidence", "escalated"]
    assert d.to_dict()["rules"] == ["low_confidence", "escalated"]


def test_single_rule_decisions_list_only_that_rule():
    d = decide(PORTFOLIO, cls(TaskClass.REASONING, 0.95), p_weak=0.9, threshold=0.3, input_tokens=100)
    assert d.rules == ["classified"]
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.95), 0.9, 0.3, 10, Hints(model="gpt-5"))
    assert d.rules == ["explicit_model"]


def test_no_escalation_at_or_above_threshold():
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.95), p_weak=0.3, threshold=0.3, input_tokens=10)
    assert d.model == PORTFOLIO.routes["SIMPLE"].models[0]


def test_explicit_model_passes_through_without_fallbacks():
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.95), 0.9, 0.3, 10, Hints(model="gpt-5"))
    assert (d.model, d.fallbacks, d.rule) == ("gpt-5", [], "explicit_model")


def test_explicit_unknown_model_is_rejected():
    with pytest.raises(UnknownModelError):
        decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.95), 0.9, 0.3, 10, Hints(model="gpt-9"))


def test_class_hint_overrides_classifier_and_explicit_budget_overrides_route():
    budget = Budget(max_output_tokens=77)
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.99), 0.9, 0.3, 10, Hints(task_class=TaskClass.OPEN_ENDED, budget=budget))
    assert d.task_class is TaskClass.OPEN_ENDED and d.rule == "hint_class" and d.budget == budget


@pytest.mark.parametrize(
    "cap_tokens, cap_effort, expected_max, expected_effort",
    [(None, None, 16384, "high"), (1000, None, 1000, "high"), (100000, None, 16384, "high"), (None, "low", 16384, "low")],
)
def test_client_caps_only_lower_the_budget(cap_tokens, cap_effort, expected_max, expected_effort):
    b = cap_budget(PORTFOLIO.routes["REASONING"].budget, cap_tokens, cap_effort)
    assert (b.max_output_tokens, b.effort) == (expected_max, expected_effort)
    assert b.thinking_budget_tokens is None or b.thinking_budget_tokens < b.max_output_tokens


def test_estimated_cost_uses_the_chosen_models_prices():
    d = decide(PORTFOLIO, cls(TaskClass.SIMPLE, 0.95), 0.9, 0.3, input_tokens=1000)
    spec = PORTFOLIO.model(d.model)
    assert d.estimated_cost_usd == pytest.approx(spec.cost_usd(1000, d.budget.max_output_tokens))


def ladder_portfolio():
    data = PORTFOLIO.model_dump(mode="json", exclude_none=True)
    data["routes"]["REASONING"]["escalate_to"] = ["qwen3-235b-a22b", "gpt-5"]
    return type(PORTFOLIO).model_validate(data)


@pytest.mark.parametrize(
    "p_weak, expected_model, expected_rule",
    [(0.9, "gpt-oss-120b", "classified"), (0.4, "qwen3-235b-a22b", "escalated"), (0.1, "gpt-5", "escalated")],
)
def test_a_ladder_climbs_one_rung_per_threshold_crossed(p_weak, expected_model, expected_rule):
    thresholds = {"REASONING": (0.6, 0.2)}
    d = decide(ladder_portfolio(), cls(TaskClass.REASONING, 0.95), p_weak, thresholds, input_tokens=100)
    assert (d.model, d.rule) == (expected_model, expected_rule)


def test_ladder_decision_says_which_rung_fired_and_why_not_higher():
    d = decide(ladder_portfolio(), cls(TaskClass.REASONING, 0.95), 0.4, {"REASONING": (0.6, 0.2)}, input_tokens=100)
    assert "escalated to qwen3-235b-a22b (rung 1 of 2)" in d.reason and "not further (0.40 >= 0.20)" in d.reason
    assert d.budget == ladder_portfolio().routes["REASONING"].escalated_budget


def test_one_threshold_for_a_ladder_goes_straight_to_its_top():
    d = decide(ladder_portfolio(), cls(TaskClass.REASONING, 0.95), 0.1, 0.3, input_tokens=100)
    assert d.model == "gpt-5" and "rung 2 of 2" in d.reason


def test_a_class_without_thresholds_never_escalates():
    d = decide(ladder_portfolio(), cls(TaskClass.SIMPLE, 0.95), 0.0, {"REASONING": (0.6, 0.2)}, input_tokens=10)
    assert d.model == PORTFOLIO.routes["SIMPLE"].models[0] and d.rule == "classified"


@pytest.mark.parametrize(
    "level, n_rungs, expected",
    [(0.3, 2, [0.3]), (0.0, 4, [0.0, 0.0, 0.0]), (0.5, 4, [1.0, 0.5, 0.0]), (1.0, 3, [1.0, 1.0]), (0.25, 3, [0.5, 0.0])],
)
def test_rung_shares_spread_one_level_over_the_ladder(level, n_rungs, expected):
    assert rung_shares(level, n_rungs) == pytest.approx(expected)


def test_example_match_beats_the_low_confidence_fallback_and_reports_its_similarity():
    from calibroute.types import ExampleMatch

    match = ExampleMatch(TaskClass.SIMPLE, 0.62, "Translate to German: good morning, how are you today?", 0.5)
    d = decide(PORTFOLIO, cls(TaskClass.REASONING, 0.4), p_weak=0.9, threshold=0.3, input_tokens=100, example=match)
    assert (d.task_class, d.rule, d.rules, d.confidence) == (TaskClass.SIMPLE, "example_match", ["example_match"], 0.62)
    assert d.model == PORTFOLIO.routes["SIMPLE"].models[0] and d.scores == {"REASONING": 0.4}
    assert 'SIMPLE example "Translate to German: good morning, how are you today?" (similarity 0.62 >= 0.50)' in d.reason
    hinted = decide(PORTFOLIO, None, 0.9, 0.3, 100, Hints(task_class=TaskClass.OPEN_ENDED), example=match)
    assert hinted.rule == "hint_class" and hinted.task_class is TaskClass.OPEN_ENDED and hinted.confidence == 1.0


def with_min_confidence(min_confidence: object):
    from calibroute.config import RoutingSettings

    return PORTFOLIO.model_copy(update={"routing": RoutingSettings(min_confidence=min_confidence)})


PER_CLASS = {"SIMPLE": 0.75, "REASONING": 0.55, "default": 0.65}


@pytest.mark.parametrize(
    "task, conf, expected_class, expected_bar",
    [
        (TaskClass.REASONING, 0.58, TaskClass.REASONING, "0.55"),  # routed: REASONING's own bar is lower
        (TaskClass.REASONING, 0.53, TaskClass.GENERAL, "0.55"),
        (TaskClass.SIMPLE, 0.72, TaskClass.GENERAL, "0.75"),  # same confidence would pass a global 0.70
        (TaskClass.SIMPLE, 0.80, TaskClass.SIMPLE, "0.75"),
        (TaskClass.OPEN_ENDED, 0.64, TaskClass.GENERAL, "0.65"),  # not listed: the default key
        (TaskClass.OPEN_ENDED, 0.66, TaskClass.OPEN_ENDED, "0.65"),
    ],
)
def test_per_class_min_confidence_applies_the_predicted_class_threshold(task, conf, expected_class, expected_bar):
    d = decide(with_min_confidence(PER_CLASS), cls(task, conf), p_weak=None, threshold=None, input_tokens=10)
    assert d.task_class is expected_class
    assert d.rule == ("classified" if expected_class is task else "low_confidence")
    assert f"{conf:.2f} {'>=' if expected_class is task else '<'} {expected_bar} ({task.value} threshold)" in d.reason


def test_per_class_min_confidence_without_default_uses_the_global_default_for_unlisted_classes():
    p = with_min_confidence({"REASONING": 0.5})
    below, at = round(DEFAULT_MIN_CONFIDENCE - 0.01, 2), DEFAULT_MIN_CONFIDENCE
    assert decide(p, cls(TaskClass.SIMPLE, below), None, None, 10).task_class is TaskClass.GENERAL
    assert decide(p, cls(TaskClass.SIMPLE, at), None, None, 10).task_class is TaskClass.SIMPLE
    assert decide(p, cls(TaskClass.REASONING, 0.51), None, None, 10).task_class is TaskClass.REASONING


def test_a_single_min_confidence_still_applies_to_every_class_and_names_no_class():
    p = with_min_confidence(0.6)
    for task in (TaskClass.SIMPLE, TaskClass.REASONING, TaskClass.OPEN_ENDED):
        assert decide(p, cls(task, 0.59), None, None, 10).task_class is TaskClass.GENERAL
        d = decide(p, cls(task, 0.61), None, None, 10)
        assert d.task_class is task and d.reason == f"classified {task.value} with confidence 0.61 >= 0.60"
