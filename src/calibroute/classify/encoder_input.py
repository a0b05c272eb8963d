"""Token ids for the encoder classifier: the same code at training and at run time.

The turn comes first (its head and tail: the instruction is usually at one end, the material in
between), then the context of a follow-up as the second segment, capped so it can only inform.
Texts are clipped by characters before tokenizing: a 300-word prompt costs the same as a 3,000-word one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ..conversation import Turn

MAX_TOKENS = 96
CONTEXT_TOKENS = 32
HEAD_SHARE = 0.75  # of the turn's token budget, the rest is its tail
_CHAR_HEAD, _CHAR_TAIL = 1200, 400


def _clip_chars(text: str) -> str:
    return text if len(text) <= _CHAR_HEAD + _CHAR_TAIL else text[:_CHAR_HEAD] + " ... " + text[-_CHAR_TAIL:]


@dataclass
class EncoderInput:
    """Turns a ``Turn`` into BERT-style ``input_ids`` / ``token_type_ids`` (no padding)."""

    tokenizer: Tokenizer
    cls_id: int
    sep_id: int
    max_tokens: int = MAX_TOKENS
    context_tokens: int = CONTEXT_TOKENS

    @classmethod
    def load(cls, path: Path, max_tokens: int = MAX_TOKENS, context_tokens: int = CONTEXT_TOKENS) -> EncoderInput:
        tok = Tokenizer.from_file(str(path))
        tok.no_truncation()
        tok.no_padding()
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError(f"{path}: not a BERT WordPiece tokenizer ([CLS]/[SEP] missing)")
        return cls(tok, cls_id, sep_id, max_tokens, context_tokens)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(_clip_chars(text), add_special_tokens=False).ids)

    def ids(self, turn: Turn) -> tuple[list[int], list[int]]:
        turn_ids = self._ids(turn.text)
        ctx_ids = self._ids(turn.context)[: self.context_tokens] if turn.context else []
        room = self.max_tokens - 2 - (len(ctx_ids) + 1 if ctx_ids else 0)
        if len(turn_ids) > room:
            head = int(room * HEAD_SHARE)
            turn_ids = turn_ids[:head] + turn_ids[len(turn_ids) - (room - head) :]
        ids = [self.cls_id, *turn_ids, self.sep_id]
        types = [0] * len(ids)
        if ctx_ids:
            ids += [*ctx_ids, self.sep_id]
            types += [1] * (len(ctx_ids) + 1)
        return ids, types

    def batch(self, turns: list[Turn]) -> dict[str, np.ndarray]:
        """Padded int64 arrays for a batch (attention mask marks the real tokens)."""
        encoded = [self.ids(t) for t in turns]
        width = max(len(ids) for ids, _ in encoded)
        out = {k: np.zeros((len(turns), width), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
        for row, (ids, types) in enumerate(encoded):
            out["input_ids"][row, : len(ids)] = ids
            out["token_type_ids"][row, : len(ids)] = types
            out["attention_mask"][row, : len(ids)] = 1
        return out
