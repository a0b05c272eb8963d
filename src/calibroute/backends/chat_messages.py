"""Reading chat-completions messages for another API: their text, and the system turns those APIs keep apart."""

from __future__ import annotations

from typing import Any


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined (images and other parts carry none)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(the system and developer turns' text, joined; the other messages): Messages and Responses take the first apart."""
    system = [text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    return "\n\n".join(s for s in system if s), [m for m in messages if m.get("role") not in ("system", "developer")]
