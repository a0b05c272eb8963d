"""Token counts and prices for outcome data that lacks them.

tiktoken downloads its BPE tables at run time, which fails offline, so token counts come from
the WordPiece tokenizer (all-MiniLM-L6-v2's ``tokenizer.json``) that ships inside calibroute's
classifier artifacts. It is a real subword tokenizer; on English text it counts within ~10-20 %
of GPT's cl100k BPE, which is close enough for cost *ratios* between models. Every loader that
uses it says so in ``OutcomeSet.notes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, DataError

TOKENIZER_FILE = "classifier-static-tokenizer.json"
TOKENIZER_NOTE = "token counts estimated with the bundled all-MiniLM-L6-v2 WordPiece tokenizer (no tiktoken offline)"
_BATCH = 2048


@cache
def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    path = Path(__file__).resolve().parent.parent / "classify" / "artifacts" / TOKENIZER_FILE
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a plain Exception on a bad file
        raise ArtifactError(f"cannot load tokenizer {path}: {exc}") from None
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(texts: Sequence[str]) -> np.ndarray:
    """Subword token counts, one per text (at least 1 for a non-empty text)."""
    tok = _tokenizer()
    out = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), _BATCH):
        chunk = [t or "" for t in texts[start : start + _BATCH]]
        out[start : start + len(chunk)] = [len(e.ids) for e in tok.encode_batch(chunk, add_special_tokens=False)]
    return out


Prices = dict[str, tuple[float, float]]  # model -> (input, output) USD per million tokens


def load_prices(path: Path) -> Prices:
    """Read ``{model: {"input": x, "output": y}}`` or ``{model: [x, y]}`` (USD per million tokens), JSON or YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read prices: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data: Any = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a mapping model -> prices")
    return {str(model): _price_pair(path, str(model), value) for model, value in data.items()}


def _price_pair(path: Path, model: str, value: Any) -> tuple[float, float]:
    if isinstance(value, Mapping):
        keys = [("input", "output"), ("input_usd_per_mtok", "output_usd_per_mtok"), ("input_price", "output_price"),
                ("input_token_price_per_million", "output_token_price_per_million")]
        for kin, kout in keys:
            if kin in value and kout in value:
                value = [value[kin], value[kout]]
                break
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            pin, pout = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            pass
        else:
            if pin >= 0 and pout >= 0:
                return pin, pout
    raise DataError(f"{path}: model {model!r}: expected {{input: USD/Mtok, output: USD/Mtok}} or [input, output]")


def cost_from_tokens(price: tuple[float, float], input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
    """USD per call from per-million-token prices."""
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6
