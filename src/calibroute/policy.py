"""The routing rules: classification + difficulty + portfolio + hints -> Decision. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .config import EFFORT_ORDER, Budget, Portfolio
from .types import Classification, Decision, ExampleMatch, Hints, TaskClass

# One threshold for every route (a two-model route escalates below it; a ladder goes straight to
# its top), or per task class one threshold per rung, decreasing (``Router`` calibrates these).
Thresholds = float | Mapping[str, Sequence[float]]


def rung_shares(level: float, n_rungs: int) -> list[float]:
    """Share of traffic that climbs past each rung of an escalation ladder, for one target ``level`` in [0, 1].

    A ladder of ``n_rungs`` models is climbed ``level * (n_rungs - 1)`` rungs on average: every
    rung below that point is always passed, the next one is passed by the hardest fraction, the
    rest never. With two models this is the plain strong share. Example, 4 models, level 0.5:
    [1.0, 0.5, 0.0] -- every request skips the first model, the hardest half reaches the third.
    """
    pos = min(1.0, max(0.0, level)) * (n_rungs - 1)
    return [min(1.0, max(0.0, pos - k)) for k in range(n_rungs - 1)]


def ladder_thresholds(level: float, n_rungs: int, threshold_for_share: Callable[[float], float]) -> tuple[float, ...]:
    """Per-rung thresholds of a ladder of ``n_rungs`` models at an escalation level (decreasing)."""
    return tuple(threshold_for_share(share) for share in rung_shares(level, n_rungs))


def cap_budget(budget: Budget, max_output_tokens: int | None, effort: str | None,
               thinking_tokens: int | None = None) -> Budget:
    """Apply a client's own caps: they may lower the routed budget, never raise it."""
    update: dict[str, object] = {}
    if thinking_tokens is not None and budget.thinking:
        if thinking_tokens <= 0:
            update.update(thinking=False, thinking_budget_tokens=None)
        elif budget.thinking_budget_tokens is None or thinking_tokens < budget.thinking_budget_tokens:
            update["thinking_budget_tokens"] = thinking_tokens
    if max_output_tokens is not None and max_output_tokens < budget.max_output_tokens:
        update["max_output_tokens"] = max_output_tokens
        thinking = update.get("thinking_budget_tokens", budget.thinking_budget_tokens)
        if isinstance(thinking, int) and thinking >= max_output_tokens:
            update["thinking_budget_tokens"] = max_output_tokens // 2 if update.get("thinking", budget.thinking) else None
    if effort is not None and effort in EFFORT_ORDER:
        if budget.effort is None or EFFORT_ORDER.index(effort) < EFFORT_ORDER.index(budget.effort):
            update["effort"] = effort
    return budget.model_copy(update=update) if update else budget


def decide(
    portfolio: Portfolio,
    classification: Classification | None,
    p_weak: float | None,
    threshold: Thresholds | None,
    input_tokens: int,
    hints: Hints = Hints(),
    example: ExampleMatch | None = None,
) -> Decision:
    """Apply the rules in a fixed order. ``Decision.rule`` names the rule that chose the model;
    ``Decision.rules`` lists every rule that fired, in order (e.g. low_confidence then escalated).

    1. explicit_model: the caller named a configured model -> pass through with the GENERAL budget
       (or the caller's budget).
    2. hint_class: the caller gave the task class (e.g. a ``domain`` hint) -> skip the classifier.
    3. example_match: the prompt is close to one of the operator's labelled examples
       (``routing.examples``) -> that example's class; confidence is the similarity.
    4. low_confidence: classifier confidence below ``routing.min_confidence`` (the threshold of the
       *predicted* class when it is set per class) -> GENERAL, the safe route.
    5. escalated: P(cheaper model suffices) below the calibrated threshold -> the route's stronger model;
       with a ladder, one rung up per threshold crossed (rung k needs P < t_k, t_1 > t_2 > ...).
    6. classified: the route's first model with the route's budget.
    """
    scores = dict(classification.scores) if classification else {}
    confidence = classification.confidence if classification else 1.0
    if hints.task_class is not None:
        example = None  # the caller's class wins; an example match would be a second opinion nobody asked for
    if example is not None:
        confidence = example.similarity
    fired: list[str] = []

    if hints.model is not None:
        spec = portfolio.model(hints.model)
        task_class = hints.task_class or (
            example.task_class if example else classification.task_class if classification else TaskClass.GENERAL
        )
        budget = hints.budget or portfolio.routes[task_class.value].budget
        rule, reason = "explicit_model", f"caller asked for {spec.name}"
        model, fallbacks = spec.name, []
    else:
        if hints.task_class is not None:
            task_class, rule = hints.task_class, "hint_class"
            reason = f"caller hinted task class {task_class.value}"
        elif example is not None:
            task_class, rule, reason = example.task_class, "example_match", _example_reason(example, classification)
        elif classification is None:
            task_class, rule, reason = TaskClass.GENERAL, "low_confidence", "no classification: safe route"
        elif classification.confidence < (bar := portfolio.routing.threshold_for(classification.task_class.value)):
            task_class, rule = TaskClass.GENERAL, "low_confidence"
            reason = (
                f"classifier said {classification.task_class.value} with confidence "
                f"{classification.confidence:.2f} < {bar:.2f}{_bar_name(portfolio, classification)}: safe route GENERAL"
            )
        else:
            task_class, rule = classification.task_class, "classified"
            reason = (
                f"classified {task_class.value} with confidence {classification.confidence:.2f} "
                f">= {bar:.2f}{_bar_name(portfolio, classification)}"
            )
        route = portfolio.routes[task_class.value]
        model, fallbacks, budget = route.models[0], list(route.models[1:]), route.budget
        ladder = route.ladder
        cuts = _rung_thresholds(threshold, task_class.value, len(ladder))
        rung = 0
        while p_weak is not None and rung < len(cuts) and p_weak < cuts[rung]:
            rung += 1
        if rung > 0 and p_weak is not None:
            model = ladder[rung]
            fallbacks = [m for m in route.models if m != model]
            budget = route.escalated_budget or route.budget
            fired.append(rule)
            rule = "escalated"
            where = f" (rung {rung} of {len(ladder) - 1})" if len(ladder) > 2 else ""
            reason += f"; P(cheaper model suffices)={p_weak:.2f} < {cuts[rung - 1]:.2f}: escalated to {model}{where}"
            if rung < len(cuts):
                reason += f", not further ({p_weak:.2f} >= {cuts[rung]:.2f})"
        elif p_weak is not None and cuts:
            reason += f"; P(cheaper model suffices)={p_weak:.2f} >= {cuts[0]:.2f}"
        if hints.budget is not None:
            budget = hints.budget
            reason += "; caller's explicit budget"
    fired.append(rule)

    budget = cap_budget(budget, hints.max_output_tokens, hints.effort, hints.thinking_tokens)
    cost = portfolio.model(model).cost_usd(input_tokens, budget.max_output_tokens)
    return Decision(
        task_class=task_class,
        confidence=round(confidence, 4),
        difficulty=None if p_weak is None else round(p_weak, 4),
        model=model,
        fallbacks=fallbacks,
        budget=budget,
        estimated_cost_usd=round(cost, 8),
        rule=rule,
        rules=fired,
        reason=reason,
        scores={k: round(v, 4) for k, v in scores.items()},
        input_tokens_est=input_tokens,
    )


def _bar_name(portfolio: Portfolio, classification: Classification) -> str:
    """' (REASONING threshold)' when thresholds are per class: says which one applied."""
    per_class = not isinstance(portfolio.routing.min_confidence, float)
    return f" ({classification.task_class.value} threshold)" if per_class else ""


EXAMPLE_QUOTE_CHARS = 60


def _example_reason(example: ExampleMatch, classification: Classification | None) -> str:
    """Quote the matched example (truncated) and its similarity, and what the classifier would have said."""
    quote = " ".join(example.example.split())
    if len(quote) > EXAMPLE_QUOTE_CHARS:
        quote = quote[: EXAMPLE_QUOTE_CHARS - 1] + "…"
    reason = (
        f"matches your {example.task_class.value} example \"{quote}\" "
        f"(similarity {example.similarity:.2f} >= {example.min_similarity:.2f})"
    )
    if classification is not None:
        reason += f"; classifier said {classification.task_class.value} {classification.confidence:.2f}"
    return reason


def _rung_thresholds(threshold: Thresholds | None, task_class: str, n_models: int) -> Sequence[float]:
    """The thresholds for climbing a route's ladder of ``n_models`` models (empty: no escalation)."""
    if threshold is None or n_models < 2:
        return ()
    if isinstance(threshold, Mapping):
        return threshold.get(task_class, ())
    return (float(threshold),) * (n_models - 1)
