"""What the router reads from a request: the turn to classify and the context it follows.

One home for the pieces the router, the threshold replay and the gateway share, so imports run one way.

A multi-turn ``messages`` list is classified by its **last user turn**, read with **the user turn before
it and the start of the answer in between** as context: "now translate it to French" after a story is a
translation (SIMPLE), after a proof request "now do it for n = 3" is REASONING. The classifier is
trained on real follow-ups in that form (``followups.jsonl``). System prompts are not read unless there
is no user turn at all: in real traffic they are mostly boilerplate ("You are a helpful assistant"),
and the labelled data has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError

# The classifier sees at most this much text: the head carries the instruction, the tail the question.
CLASSIFY_HEAD_CHARS = 6000
CLASSIFY_TAIL_CHARS = 2000
CHARS_PER_TOKEN = 4  # cost estimates only; the gateway bills real usage
# Context is a hint, not the request: the previous user turn and the answer's opening are enough.
CONTEXT_USER_CHARS = 600
CONTEXT_ANSWER_CHARS = 400


@dataclass(frozen=True)
class Turn:
    """The text to classify and, for a follow-up, what it follows (``None`` for a fresh request)."""

    text: str
    context: str | None = None


def _content_text(i: int, msg: Any) -> tuple[str, str]:
    if not isinstance(msg, Mapping) or "role" not in msg:
        raise InputError(f"messages[{i}] must be an object with a 'role'")
    content = msg.get("content")
    if content is None:
        part = ""
    elif isinstance(content, str):
        part = content
    elif isinstance(content, list):
        part = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    else:
        raise InputError(f"messages[{i}].content must be a string or a list of content parts")
    return str(msg["role"]), part


def _parsed(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise InputError("messages must be a non-empty list of {role, content} objects")
    return [_content_text(i, msg) for i, msg in enumerate(messages)]


def turn_from_messages(messages: Sequence[Mapping[str, Any]]) -> Turn:
    """The last user turn, with the previous user turn and the answer between them as context."""
    parsed = _parsed(messages)
    users = [i for i, (role, _) in enumerate(parsed) if role == "user"]
    if not users:
        system = [text for role, text in parsed if role in ("system", "developer")]
        return Turn("\n".join(system))
    last = users[-1]
    earlier = [i for i in users if i < last]
    answer = next((parsed[i][1] for i in range(last - 1, -1, -1) if parsed[i][0] == "assistant"), "")
    previous = parsed[earlier[-1]][1] if earlier else ""
    if not previous.strip() and not answer.strip():
        return Turn(parsed[last][1])
    context = f"{previous[:CONTEXT_USER_CHARS]}\n{answer[:CONTEXT_ANSWER_CHARS]}".strip()
    return Turn(parsed[last][1], context)


def messages_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user turn (the system text if there is no user turn)."""
    return turn_from_messages(messages).text


def clip_for_classifier(text: str) -> str:
    if len(text) <= CLASSIFY_HEAD_CHARS + CLASSIFY_TAIL_CHARS:
        return text
    return text[:CLASSIFY_HEAD_CHARS] + "\n" + text[-CLASSIFY_TAIL_CHARS:]
