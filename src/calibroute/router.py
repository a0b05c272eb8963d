"""The Router: prompt or chat messages in, a Decision out. Deterministic and in-process."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .classify import load_classifier, load_difficulty
from .classify.base import Classifier, DifficultyEstimator, classify_turn
from .classify.examples import ExampleMatcher, matcher_from_settings
from .config import Portfolio, load_portfolio
from .conversation import CHARS_PER_TOKEN, Turn, clip_for_classifier, turn_from_messages
from .errors import InputError
from .policy import Thresholds, decide, ladder_thresholds
from .types import Decision, Hints


class Router:
    """Holds a portfolio and its estimators; ``decide`` is cheap enough for the request path."""

    def __init__(
        self,
        portfolio: Portfolio,
        classifier: Classifier | None = None,
        difficulty: DifficultyEstimator | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.classifier = classifier if classifier is not None else _portfolio_classifier(portfolio)
        self.difficulty = difficulty if difficulty is not None else load_difficulty()
        # Built once: the operator's labelled examples, featurized like the classifier featurizes prompts.
        self.examples: ExampleMatcher | None = matcher_from_settings(portfolio.routing, self.classifier)
        self.level, self.threshold, self.rung_thresholds = self._calibrate()

    def _calibrate(self) -> tuple[float | None, float | None, dict[str, tuple[float, ...]]]:
        """The escalation level, the two-model threshold, and every route's rung thresholds.

        The config's target (see ``config.Escalation`` for the order) fixes one level in [0, 1]:
        the share of reference traffic a two-model route escalates. A ladder route of K models
        gets K-1 thresholds from the same level (``policy.rung_shares``), all on the same
        reference quantiles: the built-in reference set, or your traffic if configured.
        """
        esc = self.portfolio.routing.escalation
        has_ladder = any(len(r.ladder) > 2 for r in self.portfolio.routes.values())
        share_to_threshold = self.difficulty.threshold_for_share
        traffic = None
        wants_replay = esc.threshold is None and (esc.max_avg_cost_usd is not None or esc.strong_share is not None)
        if esc.reference_prompts is not None and (wants_replay or (esc.threshold is not None and has_ladder)):
            from .threshold import read_reference_prompts, replay

            traffic = replay(self, read_reference_prompts(esc.reference_prompts))
            share_to_threshold = traffic.threshold_for_share
        level: float | None = None
        if esc.threshold is not None:
            pair = esc.threshold
            if has_ladder:
                level = traffic.share_below(pair) if traffic else _share_below(share_to_threshold, pair)
        elif esc.max_avg_cost_usd is not None and traffic is not None:
            level = traffic.level_for_cost(esc.max_avg_cost_usd)
            pair = traffic.threshold_for_share(level)
        elif esc.strong_share is not None:
            level, pair = esc.strong_share, share_to_threshold(esc.strong_share)
        else:
            return None, None, {}
        rungs: dict[str, tuple[float, ...]] = {}
        for cls, route in self.portfolio.routes.items():
            n = len(route.ladder)
            if n == 2:
                rungs[cls] = (pair,)
            elif n > 2 and level is not None:
                rungs[cls] = ladder_thresholds(level, n, share_to_threshold)
        return level, pair, rungs

    @property
    def thresholds(self) -> Thresholds | None:
        """What ``policy.decide`` gets: per task class, the rung thresholds (None: never escalate)."""
        return self.rung_thresholds if self.threshold is not None else None

    @classmethod
    def from_config(cls, path: str | None = None) -> Router:
        return cls(load_portfolio(path))

    def decide(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        hints: Hints = Hints(),
    ) -> Decision:
        if (prompt is None) == (messages is None):
            raise InputError("give exactly one of prompt or messages")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError("prompt must be a string")
        turn = Turn(prompt) if prompt is not None else turn_from_messages(messages)  # type: ignore[arg-type]
        text = turn.text
        if not text.strip():
            raise InputError("empty prompt: nothing to route")
        input_tokens = max(1, len(text) // CHARS_PER_TOKEN)
        if hints.model is not None and hints.task_class is None:
            self.portfolio.model(hints.model)  # unknown model fails before any work
        clipped = clip_for_classifier(text)
        classification = None if hints.task_class is not None else classify_turn(self.classifier, clipped, turn.context)
        example = None if hints.task_class is not None or self.examples is None else self.examples.match(clipped)
        # A named model skips escalation, so its difficulty estimate would be wasted work.
        p_weak = None if hints.model is not None else self.difficulty.p_weak_suffices(clipped)
        return decide(self.portfolio, classification, p_weak, self.thresholds, input_tokens, hints, example)


def _portfolio_classifier(portfolio: Portfolio) -> Classifier:
    """The registry's classifier, or the encoder with the team's own head (``routing.classifier_head``)."""
    routing = portfolio.routing
    if routing.classifier_head is None:
        return load_classifier(routing.classifier)
    from .classify.encoder import load_encoder_classifier

    return load_encoder_classifier(head_path=routing.classifier_head)


def _share_below(threshold_for_share: Callable[[float], float], threshold: float) -> float:
    """The inverse of a (monotone) share -> threshold map by bisection: the share escalating below ``threshold``."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if threshold_for_share(mid) <= threshold else (lo, mid)
    return lo
