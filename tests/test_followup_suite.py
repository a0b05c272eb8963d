"""The hand-written follow-up suites: clean second turns in the blind test's style.

Two suites, both test fixtures written by hand and labelled by the class guide, never training data:
tests/data/followup_suite.jsonl is the development suite (its errors are looked at and tuned on);
tests/data/followup_suite_heldout.jsonl was written independently of it as a held-out test that nobody tunes on.
bench/classifier_followup_suite.py [--suite PATH] prints the full report (per class, confusion, routing at the shipped
thresholds, with and without context).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from calibroute.classify import load_classifier
from calibroute.classify.corpus import CLASSES
from calibroute.conversation import turn_from_messages

DATA = Path(__file__).parent / "data"


def _load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).open(encoding="utf-8") if line.strip()]


SUITES = {"dev": _load("followup_suite.jsonl"), "heldout": _load("followup_suite_heldout.jsonl")}
# Each floor was set after one measurement on the shipped encoder, a few points under it, as a regression guard; the
# suites and their labels were written before the classifier ever saw them and were not changed after.
# dev (session 6): argmax accuracy 0.795 (89 of 112) in context, 0.777 on the last turn alone.
# heldout (session 6): argmax accuracy 0.785 (95 of 121) in context, 0.802 on the last turn alone.
ACCURACY_FLOORS = {"dev": 0.75, "heldout": 0.74}


@pytest.mark.parametrize("suite", SUITES)
def test_every_row_is_a_two_turn_conversation_with_a_known_class(suite):
    for i, row in enumerate(SUITES[suite]):
        assert set(row) == {"messages", "task_class", "why"}, i
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user"], i
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"]), i
        assert row["task_class"] in CLASSES and row["why"].strip(), i


@pytest.mark.parametrize("suite", SUITES)
def test_the_suite_covers_the_four_classes_about_evenly_without_repeats(suite):
    rows = SUITES[suite]
    counts = Counter(row["task_class"] for row in rows)
    assert set(counts) == set(CLASSES) and all(20 <= n <= 35 for n in counts.values()), counts
    conversations = {tuple(m["content"] for m in row["messages"]) for row in rows}
    assert len(conversations) == len(rows)


def test_the_held_out_suite_shares_no_conversation_with_the_dev_suite():
    """Independence: the held-out suite was written without reading the dev suite (a bare "thanks!" may recur)."""
    def key(row: dict[str, Any]) -> tuple[str, str]:
        return row["messages"][0]["content"].strip().lower(), row["messages"][-1]["content"].strip().lower()

    dev = {key(row) for row in SUITES["dev"]}
    assert not [row for row in SUITES["heldout"] if key(row) in dev]


@pytest.mark.parametrize("suite", SUITES)
def test_the_router_reads_each_conversation_as_its_last_turn_in_context(suite):
    for row in SUITES[suite]:
        turn = turn_from_messages(row["messages"])
        assert turn.text == row["messages"][-1]["content"] and turn.context


@pytest.fixture(scope="module")
def encoder():
    return load_classifier("encoder")


@pytest.mark.parametrize("suite", SUITES)
def test_shipped_classifier_stays_above_its_follow_up_accuracy_floor(suite, encoder):
    rows = SUITES[suite]
    hits = 0
    for row in rows:
        turn = turn_from_messages(row["messages"])
        hits += encoder.classify(turn.text, turn.context).task_class.value == row["task_class"]
    assert hits / len(rows) >= ACCURACY_FLOORS[suite], f"{hits} of {len(rows)}"
