import pytest

from calibroute import Hints, Router, TaskClass, load_portfolio
from calibroute.errors import InputError
from calibroute.conversation import CLASSIFY_HEAD_CHARS, clip_for_classifier, messages_text
from stubs import KeywordClassifier, LengthDifficulty


@pytest.fixture
def router() -> Router:
    return Router(load_portfolio(), classifier=KeywordClassifier(), difficulty=LengthDifficulty())


def test_threshold_is_calibrated_from_the_target_strong_share(router):
    assert router.threshold == pytest.approx(0.3)  # LengthDifficulty maps share -> threshold 1:1


def test_decide_prompt_and_messages_agree(router):
    by_prompt = router.decide(prompt="Write a poem about rain")
    by_messages = router.decide(
        messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "Write a poem about rain"}]
    )
    assert by_prompt == by_messages
    assert by_prompt.task_class is TaskClass.OPEN_ENDED


def test_decisions_are_deterministic(router):
    prompts = ["Prove that there are infinitely many primes", "hello there", "Summarize: " + "x " * 500]
    assert [router.decide(prompt=p) for p in prompts] == [router.decide(prompt=p) for p in prompts]


def test_hard_prompt_escalates_within_its_route(router):
    d = router.decide(prompt="Prove this hard lemma")
    assert d.rule == "escalated" and d.model == router.portfolio.routes["REASONING"].escalate_to


def test_content_parts_are_read_as_text(router):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "write a story"}, {"type": "image_url"}]}]
    assert router.decide(messages=msgs).task_class is TaskClass.OPEN_ENDED


def test_domain_hint_skips_the_classifier(router):
    d = router.decide(prompt="hello there", hints=Hints(task_class=TaskClass.REASONING))
    assert d.task_class is TaskClass.REASONING and d.rule == "hint_class"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": "   "}, "empty prompt"),
        ({"prompt": 42}, "prompt must be a string"),
        ({}, "exactly one of"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"content": "hi"}]}, "must be an object with a 'role'"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
        ({"messages": "hi"}, "non-empty list"),
    ],
)
def test_bad_input_is_an_input_error(router, kwargs, message):
    with pytest.raises(InputError, match=message):
        router.decide(**kwargs)


def test_one_megabyte_prompt_is_routed_on_a_clipped_view(router):
    huge = "Summarize the following report. " + "lorem ipsum " * 90_000
    assert len(huge) > 1_000_000
    d = router.decide(prompt=huge)
    assert d.input_tokens_est > 200_000 and d.task_class is TaskClass.SIMPLE
    assert len(clip_for_classifier(huge)) < CLASSIFY_HEAD_CHARS + 3000


def test_messages_text_prefers_the_last_user_turn():
    msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "last"}]
    assert messages_text(msgs) == "last"
    assert messages_text([{"role": "system", "content": "only system"}]) == "only system"


def test_classifier_and_difficulty_share_one_feature_pass():
    """The lexical classifier and the difficulty estimator use the same hashed featurizer: hash a prompt once."""
    from calibroute.classify import load_classifier, load_difficulty
    from calibroute.classify.features import _sparse_memo

    lexical = load_classifier("lexical")
    load_difficulty()
    _sparse_memo.cache_clear()
    Router(load_portfolio(), classifier=lexical).decide(prompt="Write a sonnet about compilers, please, in iambic pentameter")
    info = _sparse_memo.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def ladder_router(**escalation) -> Router:
    data = load_portfolio().model_dump(mode="json", exclude_none=True)
    data["routes"]["REASONING"]["escalate_to"] = ["qwen3-235b-a22b", "gpt-5"]
    if escalation:
        data["routing"]["escalation"] = escalation
    portfolio = type(load_portfolio()).model_validate(data)
    return Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())


def test_one_strong_share_calibrates_every_rung_of_a_ladder():
    router = ladder_router(strong_share=0.75)  # 3-model ladder: every request passes rung 1, the hardest half rung 2
    assert router.rung_thresholds["REASONING"] == pytest.approx((1.0, 0.5))
    assert router.rung_thresholds["SIMPLE"] == pytest.approx((0.75,))  # two-model routes: the share itself
    assert router.decide(prompt="Prove this. " + "x" * 100).model == "qwen3-235b-a22b"  # p ~ 0.94
    assert router.decide(prompt="Prove this hard lemma").model == "gpt-5"  # p = 0.05


def test_explicit_threshold_keeps_two_model_routes_exact_and_sets_the_ladder_level():
    router = ladder_router(threshold=0.3, strong_share=None)
    assert router.rung_thresholds["SIMPLE"] == (0.3,)
    assert router.rung_thresholds["REASONING"] == pytest.approx((0.6, 0.0), abs=1e-6)  # level 0.3 over 2 rungs


def test_no_target_means_no_escalation_on_a_ladder_either():
    router = ladder_router(strong_share=None)
    assert router.thresholds is None
    assert router.decide(prompt="Prove this hard lemma").model == "gpt-oss-120b"
