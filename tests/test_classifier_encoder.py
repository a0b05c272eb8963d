"""The shipped encoder classifier: input encoding, artifacts, chat quality floors, follow-ups, adapting with --extra."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from calibroute.classify import load_classifier
from calibroute.classify.adapt import adapt_head, read_labelled
from calibroute.classify.chat_data import load_chat_requests, load_followups, split_chat
from calibroute.classify.corpus import CLASSES
from calibroute.classify.encoder import ENCODER_HEAD, ENCODER_LEXICAL, EncoderHead, encoder, load_encoder_classifier
from calibroute.classify.encoder_training import choose_min_confidence, coverage_curve, fit_mix, label_ids
from calibroute.classify.linear import ARTIFACT_DIR
from calibroute.cli import app
from calibroute.config import RoutingSettings, load_portfolio
from calibroute.conversation import Turn
from calibroute.datasets import data_root
from calibroute.errors import ArtifactError, DataError
from calibroute.router import Router
from calibroute.types import TaskClass

# Floors a little under what the shipped artifact measures (bench/classifier_chat.py, docs/bench-classifier-chat.md),
# so a worse retrain fails here.
TEST_SOURCES_MACRO_F1_FLOOR = 0.75  # shipped: 0.773
FOLLOWUP_ACCURACY_FLOOR = 0.65  # shipped: 0.682


@pytest.fixture(scope="module")
def split():
    try:
        root = data_root()
        return split_chat(load_chat_requests(root), load_followups(root))
    except DataError as exc:
        pytest.skip(f"shared data missing: {exc}")


def test_long_turns_keep_head_and_tail_and_context_is_the_second_segment():
    enc = encoder().encoder.input
    ids, types = enc.ids(Turn("start " + "filler " * 2000 + "Summarize the above.", "Earlier: write me a report"))
    assert len(ids) <= enc.max_tokens
    assert ids[0] == enc.cls_id and ids.count(enc.sep_id) == 2
    first_sep = ids.index(enc.sep_id)
    assert set(types[: first_sep + 1]) == {0} and set(types[first_sep + 1 :]) == {1}
    tail = enc.tokenizer.decode(ids[first_sep - 6 : first_sep])
    assert "summarize the above" in tail  # the instruction at the end survives the clip
    assert enc.ids(Turn("hi"))[1] == [0, 0, 0]


def test_scores_are_probabilities_and_deterministic():
    clf = encoder()
    first = clf.classify("Explain how a heat pump works.")
    assert sum(first.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert first.confidence == max(first.scores.values())
    assert load_encoder_classifier().classify("Explain how a heat pump works.") == first


def test_a_request_gets_the_same_scores_alone_or_among_others():
    """Benchmarks and fits score lists; the router scores one request: both must give the same numbers."""
    clf = encoder()
    turns = [Turn("hi"), Turn("Prove that there are infinitely many primes. " * 20), Turn("Make it shorter.", context="A story ...")]
    together = clf.proba_turns(turns)
    alone = np.vstack([clf.proba_turns([t]) for t in turns])
    assert np.allclose(together, alone, atol=1e-5)  # batched int8 inference differed by up to ~0.2
    assert clf.encoder.encode([]).shape == (0, clf.head.w.shape[0])


def test_missing_or_broken_artifacts_raise_artifact_errors(tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        load_encoder_classifier(tmp_path)
    for name in ("classifier-encoder.onnx", "classifier-encoder-tokenizer.json"):
        (tmp_path / name).write_bytes((ARTIFACT_DIR / name).read_bytes())
    (tmp_path / ENCODER_HEAD).write_bytes(b"not an npz")
    with pytest.raises(ArtifactError, match="encoder head"):
        load_encoder_classifier(tmp_path)


def test_a_head_that_mixes_lexical_logits_needs_the_lexical_file(tmp_path):
    shipped = encoder().head
    for name in ("classifier-encoder.onnx", "classifier-encoder-tokenizer.json"):
        (tmp_path / name).write_bytes((ARTIFACT_DIR / name).read_bytes())
    EncoderHead(shipped.classes, shipped.w, shipped.b, shipped.temperature, {}, 0.5).save(tmp_path / ENCODER_HEAD)
    with pytest.raises(ArtifactError, match=ENCODER_LEXICAL):
        load_encoder_classifier(tmp_path)


def test_the_encoder_reads_the_input_window_it_was_trained_on(tmp_path):
    shipped = encoder().head
    for name in ("classifier-encoder.onnx", "classifier-encoder-tokenizer.json"):
        (tmp_path / name).write_bytes((ARTIFACT_DIR / name).read_bytes())
    meta = {"finetune": {"layers": 4, "max_tokens": 40, "context_tokens": 8}}
    EncoderHead(shipped.classes, shipped.w, shipped.b, shipped.temperature, meta).save(tmp_path / ENCODER_HEAD)
    window = load_encoder_classifier(tmp_path).encoder.input
    assert (window.max_tokens, window.context_tokens) == (40, 8)
    ids, types = window.ids(Turn("word " * 300, context="earlier " * 100))
    assert len(ids) == 40 and types.count(1) == 9  # 8 context tokens and their [SEP]
    assert load_encoder_classifier().encoder.input.max_tokens == 96  # a head without the keys: the defaults


def test_the_lexical_weight_is_fitted_to_what_the_lexical_logits_know():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    truth = np.eye(4)[y] * 3
    encoder_logits = truth * (rng.random((2000, 1)) < 0.6) + rng.normal(0, 1, (2000, 4))  # right on 60 % of rows
    informative = truth * (rng.random((2000, 1)) < 0.6) + rng.normal(0, 1, (2000, 4))  # right on another 60 %
    weight, temperature = fit_mix(encoder_logits, informative, y)
    assert weight >= 0.5 and temperature > 0
    assert fit_mix(encoder_logits, rng.normal(0, 3, (2000, 4)), y)[0] <= 0.1  # noise gets (almost) no weight


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([("user", "Write a short story about a dragon who collects teacups."),
          ("assistant", "Once upon a time, in a cave above the village, lived a dragon named Ember..."),
          ("user", "Translate it into French.")], TaskClass.SIMPLE),
        ([("user", "Prove that there are infinitely many primes."),
          ("assistant", "Suppose there were finitely many primes p1, ..., pn. Consider N = p1 p2 ... pn + 1..."),
          ("user", "Now prove that there are infinitely many primes of the form 4k+3.")], TaskClass.REASONING),
        ([("user", "Write a Python function that merges two sorted lists."),
          ("assistant", "def merge(a, b):\n    i = j = 0\n    out = []\n    while i < len(a) and j < len(b): ..."),
          ("user", "It fails when one list is empty, fix it.")], TaskClass.REASONING),
        ([("user", "Write a short story about a dragon who collects teacups."),
          ("assistant", "Once upon a time, in a cave above the village, lived a dragon named Ember..."),
          ("user", "continue")], TaskClass.OPEN_ENDED),
    ],
)  # fmt: skip
def test_follow_ups_are_read_with_their_context(messages, expected):
    router = Router.from_config()
    msgs = [{"role": r, "content": c} for r, c in messages]
    assert router.decide(messages=msgs).task_class == expected


def test_held_out_chat_sources_stay_above_the_floor(split):
    clf = encoder()
    rows = split.test_sources
    y = label_ids([r.label for r in rows])
    pred = clf.proba_turns([r.turn for r in rows]).argmax(1)
    f1 = np.mean([2 * ((pred == k) & (y == k)).sum() / max(1, (pred == k).sum() + (y == k).sum()) for k in range(4)])
    assert f1 >= TEST_SOURCES_MACRO_F1_FLOOR


def test_held_out_follow_ups_stay_above_the_floor(split):
    rows = split.test_followups
    pred = encoder().proba_turns([r.turn for r in rows]).argmax(1)
    assert (pred == label_ids([r.label for r in rows])).mean() >= FOLLOWUP_ACCURACY_FLOOR


def test_splits_keep_non_commercial_sources_and_test_conversations_out_of_training(split):
    train_ids = {r.id for r in split.train}
    assert not {r.source for r in split.train} & {"lima", "instructionwild"}
    assert not train_ids & {r.id for r in split.dev + split.test_sources + split.test_followups}
    conversation = lambda r: r.id.split(":")[1]
    assert not {conversation(r) for r in split.train if r.source == "followups"} & {conversation(r) for r in split.test_followups}
    assert not [r for r in split.dev + split.test_sources + split.test_followups if r.ambiguous]


def test_shipped_min_confidence_is_the_one_chosen_on_dev():
    chosen = encoder().head.meta["min_confidence"]
    assert chosen == load_portfolio().routing.min_confidence == RoutingSettings().min_confidence


def test_thresholds_per_predicted_class_keep_the_most_requests_at_the_target_accuracy():
    # SIMPLE guesses: right at 0.9 and 0.5, wrong at 0.6; REASONING guesses: right at 0.55 and 0.45.
    proba = np.array([[0.9, 0.1, 0, 0], [0.6, 0.4, 0, 0], [0.5, 0.5 - 1e-3, 0, 0], [0.45, 0.55, 0, 0], [0.4, 0.45, 0.15, 0]])
    y = np.array([0, 1, 0, 1, 1])
    chosen = choose_min_confidence(proba, y, target=0.99, grid=[0.4, 0.5, 0.61, 0.7])
    assert chosen["SIMPLE"] == 0.61 and chosen["REASONING"] == 0.4  # one global threshold would have to drop both
    assert choose_min_confidence(proba, y, target=0.7, grid=[0.4, 0.5, 0.61, 0.7], max_severe=1.0)["SIMPLE"] == 0.4
    assert coverage_curve(proba[:4], y[:4], [0.0])[0] == (0.0, 1.0, 0.75)
    # The wrong SIMPLE guess at 0.6 was a REASONING request: a severe misroute, which the cap keeps out.
    assert choose_min_confidence(proba, y, target=0.7, grid=[0.4, 0.5, 0.61, 0.7], max_severe=0.0)["SIMPLE"] == 0.61


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# A made-up in-house task the shipped model has never seen: "glorp" requests are SIMPLE lookups in this team.
GLORP = [f"glorp ticket {n}: fetch the zentrix code for the {w} account" for n, w in enumerate(
    ["alpha", "beta", "gamma", "delta", "omega", "north", "south", "east", "west", "blue", "red", "green"] * 4)]


def test_adapting_the_head_learns_a_teams_labels_and_keeps_the_rest(tmp_path):
    clf = encoder()
    rows = [(Turn(t), "SIMPLE") for t in GLORP] + [(Turn("Write a poem about autumn light."), "OPEN_ENDED")]
    before = clf.proba_turns([Turn("glorp ticket 99: fetch the zentrix code for the purple account")])[0]
    head = adapt_head(clf, rows)
    adapted = clf.with_head(head)
    after = adapted.classify("glorp ticket 99: fetch the zentrix code for the purple account")
    assert after.task_class == TaskClass.SIMPLE and after.confidence > before[CLASSES.index("SIMPLE")]
    for prompt, expected in [("Prove that sqrt(2) is irrational.", TaskClass.REASONING),
                             ("Write a short story about a lighthouse keeper.", TaskClass.OPEN_ENDED)]:  # fmt: skip
        assert adapted.classify(prompt).task_class == expected


def test_cli_extra_writes_a_head_the_portfolio_uses(tmp_path):
    extra = _write_rows(tmp_path / "mine.jsonl", [{"prompt": t, "task_class": "SIMPLE"} for t in GLORP]
                        + [{"messages": [{"role": "user", "content": "Write a limerick about cats"}], "task_class": "OPEN_ENDED"}])  # fmt: skip
    result = CliRunner().invoke(app, ["train", "classifier", "--extra", str(extra), "--out", str(tmp_path / "head.npz")])
    assert result.exit_code == 0, result.output
    assert EncoderHead.load(tmp_path / "head.npz").meta["adapted"]["rows"] == len(GLORP) + 1
    portfolio = yaml.safe_load((Path(__file__).parents[1] / "src/calibroute/data/default_portfolio.yaml").read_text())
    portfolio.setdefault("routing", {})["classifier_head"] = "head.npz"  # relative to the config file
    (tmp_path / "portfolio.yaml").write_text(yaml.safe_dump(portfolio))
    router = Router.from_config(str(tmp_path / "portfolio.yaml"))
    assert router.decide(prompt="glorp ticket 7: fetch the zentrix code for the teal account").task_class == TaskClass.SIMPLE


def test_cli_extra_reports_a_bad_row_in_one_line(tmp_path):
    extra = _write_rows(tmp_path / "bad.jsonl", [{"prompt": "ok", "task_class": "SIMPLE"}, {"prompt": "x", "task_class": "EASY"}])
    result = CliRunner().invoke(app, ["train", "classifier", "--extra", str(extra)])
    assert result.exit_code == 2
    assert "row 2" in result.output and "task_class" in result.output and "Traceback" not in result.output
    with pytest.raises(DataError, match="row 1"):
        read_labelled(_write_rows(tmp_path / "empty.jsonl", [{"task_class": "SIMPLE"}]))


def test_default_classifier_is_the_encoder():
    assert type(load_classifier("default")).__name__ == "EncoderTaskClassifier"


def test_a_repeated_turn_is_classified_once():
    clf = load_encoder_classifier()
    first = clf.classify("Summarize this: the meeting moved to Tuesday.", "earlier turn")
    calls = []
    clf.proba_turns = lambda turns: calls.append(turns)  # type: ignore[method-assign]  # any new inference would land here
    assert clf.classify("Summarize this: the meeting moved to Tuesday.", "earlier turn") == first
    assert not calls


def test_fit_head_writes_a_head_and_lexical_part_that_load_and_agree(tmp_path):
    """The build's last step without torch: lexical part, mix weight, temperatures and thresholds from dev rows."""
    from calibroute.classify.chat_data import ChatRow, ChatSplit
    from calibroute.classify.encoder_training import EncoderData, Labelled, fit_head

    texts = {
        "SIMPLE": ["Translate 'good morning' into Spanish.", "Extract the email address: contact bob@x.org today.",
                   "Classify the sentiment: I loved it.", "Summarize: the meeting moved to Tuesday at noon."],
        "REASONING": ["Prove that the sum of two even numbers is even.", "Write a Python function that reverses a list.",
                      "Solve for x: 3x + 7 = 22.", "If all A are B and no B are C, can an A be a C?"],
        "OPEN_ENDED": ["Write a poem about the sea at night.", "Brainstorm names for a bakery.",
                       "Write a short story about a lost robot.", "Give me ideas for a birthday party."],
        "GENERAL": ["Explain how vaccines work.", "Compare TCP and UDP.", "What causes inflation?",
                    "How does a refrigerator keep food cold?"],
    }  # fmt: skip
    rows = [(Turn(t), c) for c, ts in texts.items() for t in ts]
    train = [Labelled(turn, c, "test") for turn, c in rows] * 3
    dev = [ChatRow(f"d{i}", turn, c, "test", True, False) for i, (turn, c) in enumerate(rows)]
    shipped = encoder()
    built = fit_head(shipped.encoder, shipped.head, EncoderData(train, ChatSplit([], dev, [], []), []), tmp_path, log=lambda _m: None)
    for name in ("classifier-encoder.onnx", "classifier-encoder-tokenizer.json"):
        (tmp_path / name).write_bytes((ARTIFACT_DIR / name).read_bytes())
    loaded = load_encoder_classifier(tmp_path)
    assert (tmp_path / ENCODER_LEXICAL).is_file() and set(loaded.head.meta["min_confidence"]) == set(CLASSES)
    assert loaded.head.lexical_weight == built.head.lexical_weight and loaded.head.mixed_temperature > 0
    probe = [Turn("Write a haiku about rain."), Turn("now shorter", "Write a haiku about rain.")]
    assert np.allclose(loaded.proba_turns(probe), built.proba_turns(probe), atol=1e-5)
