"""The hand-written follow-up suite (tests/data/followup_suite.jsonl): clean second turns in the blind test's style.

A test fixture written by hand and labelled by the class guide, never training data; bench/classifier_followup_suite.py
prints the full report (per class, confusion, routing at the shipped thresholds, with and without context).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from calibroute.classify import load_classifier
from calibroute.classify.corpus import CLASSES
from calibroute.conversation import turn_from_messages

SUITE = [json.loads(line) for line in (Path(__file__).parent / "data" / "followup_suite.jsonl").open(encoding="utf-8")]
# Measured on the shipped encoder (session 6): argmax accuracy 0.795 (89 of 112) in context, 0.777 on the last turn
# alone. The floor was set after that one measurement, a few points under it, as a regression guard; the suite and its
# labels were written before the classifier ever saw them and were not changed after.
ACCURACY_FLOOR = 0.75


def test_every_row_is_a_two_turn_conversation_with_a_known_class():
    for i, row in enumerate(SUITE):
        assert set(row) == {"messages", "task_class", "why"}, i
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user"], i
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"]), i
        assert row["task_class"] in CLASSES and row["why"].strip(), i


def test_the_suite_covers_the_four_classes_about_evenly_without_repeats():
    counts = Counter(row["task_class"] for row in SUITE)
    assert set(counts) == set(CLASSES) and all(20 <= n <= 35 for n in counts.values()), counts
    conversations = {tuple(m["content"] for m in row["messages"]) for row in SUITE}
    assert len(conversations) == len(SUITE)


def test_the_router_reads_each_conversation_as_its_last_turn_in_context():
    for row in SUITE:
        turn = turn_from_messages(row["messages"])
        assert turn.text == row["messages"][-1]["content"] and turn.context


def test_shipped_classifier_stays_above_its_follow_up_accuracy_floor():
    clf = load_classifier("encoder")
    hits = 0
    for row in SUITE:
        turn = turn_from_messages(row["messages"])
        hits += clf.classify(turn.text, turn.context).task_class.value == row["task_class"]
    assert hits / len(SUITE) >= ACCURACY_FLOOR, f"{hits} of {len(SUITE)}"
