"""Labelled chat traffic (``prompts/chat_labelled``) and the splits the classifier is trained and judged on.

Each row is a ``Turn``: the request to classify plus, for a follow-up, what came before it. Rows
whose license is non-commercial (LIMA, InstructionWild) are marked ``trainable=False``: they are
held-out test sources only, never training data for a shipped artifact. Where a row was labelled
twice and the two annotators disagree, ``ambiguous`` is set: such rows are kept in training
(one label is still the guide's reading) but dropped from test splits, as the data's SOURCE.md advises.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conversation import Turn, turn_from_messages
from ..errors import DataError

CHAT_DIR = "chat_labelled"
EVAL_ONLY_SOURCES: frozenset[str] = frozenset({"lima", "instructionwild"})  # non-commercial licenses
FOLLOWUP_SOURCE = "followups"


@dataclass(frozen=True)
class ChatRow:
    """One labelled request: ``turn`` is what the classifier sees."""

    id: str
    turn: Turn
    label: str
    source: str
    trainable: bool
    ambiguous: bool


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None


def _row(path: Path, lineno: int, rec: Mapping[str, Any], turn: Turn, source: str) -> ChatRow:
    label = rec.get("task_class")
    if label not in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"):
        raise DataError(f"{path}:{lineno}: task_class must be one of the four classes, got {label!r}")
    second = rec.get("second_label")
    licence = str(rec.get("license", ""))
    trainable = source not in EVAL_ONLY_SOURCES and "evaluation only" not in licence
    return ChatRow(str(rec.get("id", f"{source}:{lineno}")), turn, label, source, trainable, bool(second and second != label))


def load_chat_requests(data_dir: Path) -> list[ChatRow]:
    """``labels.jsonl``: single requests (some are follow-ups seen without context, labelled as seen)."""
    path = data_dir / "prompts" / CHAT_DIR / "labels.jsonl"
    if not path.is_file():
        raise DataError(f"labelled chat requests not found: {path}")
    return [_row(path, n, rec, Turn(str(rec["prompt"])), str(rec["source"])) for n, rec in _jsonl(path)]


def load_followups(data_dir: Path) -> list[ChatRow]:
    """``followups.jsonl``: a later user turn with the turn and answer before it."""
    path = data_dir / "prompts" / CHAT_DIR / "followups.jsonl"
    if not path.is_file():
        raise DataError(f"labelled follow-up turns not found: {path}")
    return [_row(path, n, rec, turn_from_messages(rec["messages"]), FOLLOWUP_SOURCE) for n, rec in _jsonl(path)]


def _share(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per key: splits do not depend on row order."""
    return (zlib.crc32(f"{seed}:{key}".encode()) & 0xFFFFFFFF) / 2**32


@dataclass(frozen=True)
class ChatSplit:
    """Training rows, a development split (temperature, thresholds) and the held-out tests."""

    train: list[ChatRow]
    dev: list[ChatRow]
    test_sources: list[ChatRow]  # whole sources never trained on (the eval-only licenses)
    test_followups: list[ChatRow]


def split_chat(
    requests: Sequence[ChatRow],
    followups: Sequence[ChatRow],
    dev_share: float = 0.15,
    followup_test_share: float = 0.4,
    seed: int = 0,
) -> ChatSplit:
    """Eval-only sources are the held-out test; a stable ``dev_share`` of the rest is the dev split.

    Follow-ups are split by conversation (the id's middle part), ``followup_test_share`` held out.
    """
    train: list[ChatRow] = []
    dev: list[ChatRow] = []
    test: list[ChatRow] = []
    for row in requests:
        if not row.trainable:
            if not row.ambiguous:
                test.append(row)
        elif _share(row.id, seed) < dev_share:
            if not row.ambiguous:
                dev.append(row)
        else:
            train.append(row)
    test_followups: list[ChatRow] = []
    for row in followups:
        conversation = row.id.split(":")[1] if row.id.count(":") >= 2 else row.id
        if _share(conversation, seed + 1) < followup_test_share:
            if not row.ambiguous:
                test_followups.append(row)
        else:
            train.append(row)
    return ChatSplit(train, dev, test, test_followups)
