"""Speculative decoding (MTP heads or a draft model): more than one output token per target step.

A step drafts ``draft_tokens`` tokens, then the target model verifies all of them in one forward
pass over ``draft_tokens + 1`` positions per sequence. If each draft token is accepted with
probability ``acceptance`` given that the previous one was (a chain, as in TensorRT-LLM's and
SGLang's MTP), a step yields on average (1 - a^(d+1)) / (1 - a) tokens.

Default acceptance 0.7 per draft token: DeepSeek-V3's report (arXiv 2412.19437, section 5.4.3)
measures 85-90% for the first MTP token; later tokens are accepted less often, and 0.7 with three
drafts reproduces TensorRT-LLM's measured 2.16x batch-1 speedup of MTP-3 on DeepSeek-R1 / 8 B200
(blog2_DeepSeek_R1_MTP_Implementation_and_Optimization.md). It is an input: pass your own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

DEFAULT_ACCEPTANCE = 0.7
DEFAULT_DRAFT_TOKENS = 3


@dataclass(frozen=True)
class Speculation:
    """``draft_cost``: one draft token's cost as a fraction of a target decode step (MTP: one layer of ~61)."""

    draft_tokens: int = DEFAULT_DRAFT_TOKENS
    acceptance: float = DEFAULT_ACCEPTANCE
    draft_cost: float | None = None  # None: one extra layer of the target model per draft token (MTP)

    def __post_init__(self) -> None:
        if self.draft_tokens < 1:
            raise InputError("speculative decoding needs at least 1 draft token")
        if not 0 <= self.acceptance < 1:
            raise InputError("draft acceptance rate must be in [0, 1)")
        if self.draft_cost is not None and self.draft_cost < 0:
            raise InputError("draft cost must be non-negative")

    @property
    def tokens_per_step(self) -> float:
        """Expected output tokens per verification step (the accepted drafts plus the target's own token)."""
        a, d = self.acceptance, self.draft_tokens
        return (1 - a ** (d + 1)) / (1 - a)

    @property
    def positions(self) -> int:
        """Positions per sequence the target model verifies in one step."""
        return self.draft_tokens + 1

    def draft_fraction(self, layers: int) -> float:
        """Draft cost per step as a fraction of one target step."""
        per_token = self.draft_cost if self.draft_cost is not None else 1.0 / layers
        return self.draft_tokens * per_token


def parse_speculation(spec: str | None) -> Speculation | None:
    """``mtp`` / ``mtp:3`` / ``mtp:3:0.8`` (draft tokens, acceptance) or ``none``; the CLI's ``--speculative``."""
    if spec is None or spec.strip().lower() in ("", "none", "off"):
        return None
    kind, *rest = spec.strip().lower().split(":")
    if kind not in ("mtp", "draft"):
        raise InputError(f"unknown speculative decoding {spec!r} (valid: none, mtp[:DRAFT_TOKENS[:ACCEPTANCE]])")
    try:
        draft = int(rest[0]) if rest else DEFAULT_DRAFT_TOKENS
        acceptance = float(rest[1]) if len(rest) > 1 else DEFAULT_ACCEPTANCE
    except ValueError:
        raise InputError(f"speculative decoding {spec!r}: expected mtp:DRAFT_TOKENS:ACCEPTANCE, e.g. mtp:3:0.7") from None
    return Speculation(draft, acceptance)
