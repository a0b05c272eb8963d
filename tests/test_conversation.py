"""How a request becomes the turn the classifier reads: the last user turn, with its context for a follow-up."""

import pytest

from calibroute.conversation import CONTEXT_ANSWER_CHARS, Turn, messages_text, turn_from_messages
from calibroute.errors import InputError


def test_a_single_user_turn_has_no_context():
    assert turn_from_messages([{"role": "user", "content": "Write a haiku"}]) == Turn("Write a haiku")


def test_a_follow_up_carries_the_previous_turn_and_the_start_of_the_answer():
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short story about a lighthouse."},
        {"role": "assistant", "content": "The keeper climbed the stairs. " * 100},
        {"role": "user", "content": "Now translate it to French."},
    ]
    turn = turn_from_messages(msgs)
    assert turn.text == "Now translate it to French."
    assert turn.context is not None and turn.context.startswith("Write a short story about a lighthouse.")
    assert "keeper" in turn.context and len(turn.context) < 700 + CONTEXT_ANSWER_CHARS
    assert "helpful assistant" not in turn.context  # system prompts are boilerplate, not context


def test_content_parts_are_read_as_text():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]}]
    assert messages_text(msgs) == "hello"


def test_only_a_system_prompt_is_read_when_there_is_no_user_turn():
    assert turn_from_messages([{"role": "system", "content": "only system"}]) == Turn("only system")


def test_an_answer_without_an_earlier_user_turn_is_still_context():
    turn = turn_from_messages([{"role": "assistant", "content": "Hi! How can I help?"}, {"role": "user", "content": "continue"}])
    assert turn == Turn("continue", "Hi! How can I help?")


@pytest.mark.parametrize("bad", [[], "text", [{"content": "no role"}], [{"role": "user", "content": 3}]])
def test_bad_messages_are_input_errors(bad):
    with pytest.raises(InputError):
        turn_from_messages(bad)
