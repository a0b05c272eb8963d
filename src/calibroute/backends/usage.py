"""Prompt tokens a backend served from its prompt cache, whichever way it reports them.

Why one place: cached input is priced apart (``cached_input_usd_per_mtok``), and servers
say it differently. In the order read:

- OpenAI, vLLM (``--enable-prompt-tokens-details``), current llama.cpp:
  ``usage.prompt_tokens_details.cached_tokens`` (part of ``prompt_tokens``);
- DeepSeek: ``usage.prompt_cache_hit_tokens``;
- Anthropic (a native Messages backend): ``usage.cache_read_input_tokens``;
- older llama.cpp ``llama-server``: ``timings.cache_n`` beside the usage, in the same body or chunk.
"""

from __future__ import annotations

from typing import Any


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cached_from_usage(usage: Any) -> int | None:
    """The cached prompt tokens a usage object reports; None when it says nothing about the cache."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        return _count(details["cached_tokens"])
    for key in ("prompt_cache_hit_tokens", "cache_read_input_tokens"):
        if key in usage:
            return _count(usage[key])
    return None


def cached_from_timings(data: dict[str, Any]) -> int | None:
    """llama.cpp's ``timings.cache_n`` (prompt tokens reused from the slot's KV cache), when present."""
    timings = data.get("timings")
    if isinstance(timings, dict) and "cache_n" in timings:
        return _count(timings["cache_n"])
    return None
