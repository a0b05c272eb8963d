"""The portfolio: which models exist, what they cost, and how each task class is routed.

A portfolio is a YAML file validated by pydantic. Errors name the file, the field,
its line, and what was expected. ``load_portfolio(None)`` returns the built-in
calibrated default shipped in ``calibroute/data/default_portfolio.yaml``.
"""

from __future__ import annotations

import os
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import ConfigError

TASK_CLASSES = ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")
TaskClassName = Literal["SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"]
Effort = Literal["minimal", "low", "medium", "high"]
EFFORT_ORDER: tuple[str, ...] = ("minimal", "low", "medium", "high")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReasoningControl(str, Enum):
    """How a model's reasoning budget is set through its API."""

    NONE = "none"  # no reasoning: only max tokens
    REASONING_EFFORT = "reasoning_effort"  # OpenAI: reasoning_effort + max_completion_tokens
    BUDGET_TOKENS = "budget_tokens"  # Anthropic: thinking={type: enabled, budget_tokens: N}
    ENABLE_THINKING = "enable_thinking"  # Qwen3: chat_template_kwargs={enable_thinking: bool}
    THINK_TAGS = "think_tags"  # thinks in <think>...</think>, no native budget: enforced on the stream


class Budget(_Strict):
    """One meaning of 'compute budget', translated per API by ``calibroute.budgets``."""

    max_output_tokens: int = Field(gt=0, le=1_000_000, description="cap on all output tokens, thinking included")
    thinking: bool = False
    thinking_budget_tokens: int | None = Field(default=None, ge=0)
    effort: Effort | None = None

    @model_validator(mode="after")
    def _thinking_fits(self) -> Budget:
        if self.thinking_budget_tokens is not None and self.thinking_budget_tokens >= self.max_output_tokens:
            raise ValueError("thinking_budget_tokens must be below max_output_tokens")
        return self

    def describe(self) -> str:
        parts = [f"max {self.max_output_tokens} tok"]
        if not self.thinking:
            parts.append("thinking off")
        else:
            if self.thinking_budget_tokens is not None:
                parts.append(f"think {self.thinking_budget_tokens} tok")
            if self.effort:
                parts.append(f"effort {self.effort}")
            if self.thinking_budget_tokens is None and not self.effort:
                parts.append("thinking on")
        return ", ".join(parts)


ApiStyle = Literal["openai", "anthropic", "responses"]
# The reasoning controls a native (non chat-completions) API can carry; the others need chat-completions features
# (chat_template_kwargs, an assistant prefill for <think> forcing).
NATIVE_CONTROLS: dict[str, tuple[str, ...]] = {"anthropic": ("none", "budget_tokens", "reasoning_effort"),
                                               "responses": ("none", "reasoning_effort")}


class BackendSpec(_Strict):
    """Where a model is served. API keys come from the environment, never from this file."""

    base_url: str = Field(pattern=r"^https?://", description="base URL of the API, e.g. http://127.0.0.1:8000/v1")
    api_style: ApiStyle = Field(
        default="openai", description="the API the backend speaks: openai (chat completions), anthropic (Messages), "
        "responses (OpenAI Responses); the gateway passes requests of the same API through natively"
    )
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    served_model: str | None = Field(default=None, description="model id at the backend, if not the model's name")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    total_timeout_s: float = Field(default=600.0, gt=0)
    native_thinking_budget: bool = Field(
        default=False, description="the server takes vLLM's per-request thinking_token_budget (enable_thinking models)"
    )

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelSpec(_Strict):
    name: str = Field(min_length=1)
    backend: BackendSpec
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cached_input_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="price of prompt tokens the backend serves from its prompt cache (default: the input price)"
    )
    total_params_b: float | None = Field(default=None, gt=0)
    active_params_b: float | None = Field(default=None, gt=0, description="active parameters per token (MoE)")
    context_window: int = Field(default=32768, gt=0)
    reasoning: ReasoningControl = ReasoningControl.NONE

    @model_validator(mode="after")
    def _active_le_total(self) -> ModelSpec:
        if self.total_params_b and self.active_params_b and self.active_params_b > self.total_params_b:
            raise ValueError("active_params_b cannot exceed total_params_b")
        return self

    @model_validator(mode="after")
    def _control_fits_the_api(self) -> ModelSpec:
        allowed = NATIVE_CONTROLS.get(self.backend.api_style)
        if allowed is not None and self.reasoning.value not in allowed:
            msg = (f"reasoning {self.reasoning.value!r} needs a chat-completions backend; a backend with api_style "
                   f"{self.backend.api_style!r} takes {', '.join(allowed)}")
            raise _field_error(("reasoning",), msg, self.reasoning.value)
        return self

    @property
    def cached_input_price(self) -> float:
        return self.input_usd_per_mtok if self.cached_input_usd_per_mtok is None else self.cached_input_usd_per_mtok

    def cost_usd(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """``cached_tokens`` of the ``input_tokens`` were read from the prompt cache: priced at the cached price."""
        cached = min(max(cached_tokens, 0), max(input_tokens, 0))
        fresh = input_tokens - cached
        return (fresh * self.input_usd_per_mtok + cached * self.cached_input_price + output_tokens * self.output_usd_per_mtok) / 1e6

    def cache_saving_usd(self, cached_tokens: int) -> float:
        """What reading ``cached_tokens`` from the cache saved against fresh input (negative if cached is dearer)."""
        return max(cached_tokens, 0) * (self.input_usd_per_mtok - self.cached_input_price) / 1e6


class RouteSpec(_Strict):
    """An ordered model list (first choice, then fallbacks) and the class's compute budget.

    ``escalate_to`` is one stronger model, or an escalation ladder: models in increasing strength,
    climbed one rung per calibrated threshold the prompt's difficulty crosses (see ``Escalation``).
    """

    models: list[str] = Field(min_length=1)
    budget: Budget
    escalate_to: str | list[str] | None = Field(
        default=None, description="stronger model, or a ladder of models in increasing strength, used when the cheaper one likely fails"
    )
    escalated_budget: Budget | None = None

    @field_validator("escalate_to")
    @classmethod
    def _ladder_is_a_list_of_distinct_models(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("an escalation ladder lists one or more distinct models, cheapest first")
        return value

    @property
    def ladder(self) -> list[str]:
        """The route's first model, then every escalation rung: ``ladder[k]`` is rung k."""
        extra = [self.escalate_to] if isinstance(self.escalate_to, str) else list(self.escalate_to or [])
        return [self.models[0], *extra]


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """A file named in the portfolio, relative to the portfolio's folder; it must exist."""
    if value is None:
        return None
    base = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base is None else Path(base) / value
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


class Escalation(_Strict):
    """When to escalate within a route, calibrated like RouteLLM's threshold.

    Escalation happens when P(cheaper model suffices) is below a threshold. The first given wins:
    an explicit ``threshold``; ``max_avg_cost_usd`` (the highest threshold whose average estimated
    cost per request on ``reference_prompts`` stays within the cap); ``strong_share`` (that fraction
    of the reference traffic escalates). Without ``reference_prompts`` the share is taken over the
    estimator's built-in chat-like reference set; with them, over your own traffic.

    The target sets one escalation *level* (for a two-model route, the share escalated). A route
    with a ladder of K models climbs ``level * (K - 1)`` rungs on average: rungs below that point
    are always passed, the next one by the hardest fraction of traffic (``policy.rung_shares``).
    """

    strong_share: float | None = Field(default=0.3, ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    max_avg_cost_usd: float | None = Field(default=None, gt=0, description="cap on mean estimated $ per request")
    reference_prompts: Path | None = Field(
        default=None, description="JSONL of {prompt} or {messages} lines; relative to the config file"
    )

    _resolve = field_validator("reference_prompts")(_resolve_path)

    @model_validator(mode="after")
    def _cost_needs_traffic(self) -> Escalation:
        if self.max_avg_cost_usd is not None and self.threshold is None and self.reference_prompts is None:
            raise ValueError("max_avg_cost_usd needs reference_prompts (the traffic the cap is averaged over)")
        return self


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("an example must be a non-empty request text")
    return text


ExampleText = Annotated[str, AfterValidator(_not_blank)]


def read_examples_file(path: Path) -> list[tuple[str, str]]:
    """``(task_class, prompt)`` pairs from a file of ``prompt`` / ``task_class`` records (JSONL, CSV or Parquet,
    by extension, read by ``tabular.read_records``). Raises ConfigError naming the file and row of the first bad one.
    """
    from .errors import DataError
    from .tabular import read_records

    pairs: list[tuple[str, str]] = []
    try:
        for row_no, row in read_records(path, ("prompt", "task_class")):
            prompt, task_class = row.get("prompt"), row.get("task_class")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ConfigError(f"{path}: row {row_no}: prompt: expected a non-empty string")
            if task_class not in TASK_CLASSES:
                raise ConfigError(f"{path}: row {row_no}: task_class: got {task_class!r}, expected one of {', '.join(TASK_CLASSES)}")
            pairs.append((str(task_class), prompt))
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    return pairs


def _field_error(loc: tuple[str | int, ...], msg: str, value: object) -> ValidationError:
    """A validation error at ``loc`` (so the YAML line of that field is reported), with ``msg`` verbatim."""
    detail = InitErrorDetails(type=PydanticCustomError("invalid_setting", msg), loc=loc, input=value)
    return ValidationError.from_exception_data("calibroute portfolio", [detail])


# One threshold per predicted class, chosen on the encoder classifier's dev split (classify/encoder_training.py,
# stored in its head); DEFAULT_MIN_CONFIDENCE is for a class a per-class mapping leaves out.
DEFAULT_CLASS_THRESHOLDS: dict[str, float] = {"SIMPLE": 0.82, "REASONING": 0.58, "OPEN_ENDED": 0.67, "GENERAL": 0.55}
DEFAULT_MIN_CONFIDENCE = 0.7
Confidence = Annotated[float, Field(ge=0, le=1)]
ThresholdKey = Literal["SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL", "default"]
_PER_CLASS, _GLOBAL = "per_class", "global"  # union tags: dropped from error locations (see parse_portfolio)


def _min_confidence_kind(value: object) -> str:
    return _PER_CLASS if isinstance(value, dict) else _GLOBAL


# One threshold for every class, or one per *predicted* class (classes differ in how precise their
# confident predictions are); classes not listed use ``default``, else DEFAULT_MIN_CONFIDENCE.
# Tagged so a bad value reports one error for the form that was written, not one per form.
MinConfidence = Annotated[
    Annotated[Confidence, Tag(_GLOBAL)] | Annotated[dict[ThresholdKey, Confidence], Tag(_PER_CLASS)],
    Discriminator(_min_confidence_kind),
]


class RoutingSettings(_Strict):
    """How the router turns a prompt into a route.

    ``examples`` are the operator's own labelled requests (like semantic-router's ``Route.utterances``):
    a prompt whose best cosine similarity to one of them reaches ``example_min_similarity`` (its
    ``score_threshold``) takes that example's class, ahead of the classifier.
    """

    min_confidence: MinConfidence = Field(
        default_factory=lambda: dict(DEFAULT_CLASS_THRESHOLDS),
        description="below this classifier confidence, use the GENERAL route; one number, or one per predicted class",
    )
    escalation: Escalation = Escalation()
    classifier: str = "default"
    classifier_head: Path | None = Field(
        default=None,
        description="a head from `calibroute train classifier --extra` for the encoder classifier; relative to the config file",
    )
    examples: dict[TaskClassName, list[ExampleText]] = Field(
        default_factory=dict, description="task class -> your own requests of that class; a close match decides the class"
    )
    examples_file: Path | None = Field(
        default=None, description="prompt / task_class records (JSONL, CSV or Parquet); relative to the config file"
    )
    example_min_similarity: float = Field(
        default=0.5, gt=0, le=1, description="cosine similarity (hashed n-gram features) an example match needs"
    )
    _file_examples: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    _resolve_examples_file = field_validator("examples_file")(_resolve_path)
    _resolve_classifier_head = field_validator("classifier_head")(_resolve_path)

    @model_validator(mode="after")
    def _examples_agree(self) -> RoutingSettings:
        if self.examples_file is not None:
            try:
                self._file_examples = read_examples_file(self.examples_file)
            except ConfigError as exc:  # reported at routing.examples_file, with the examples file's own row
                raise _field_error(("examples_file",), str(exc), str(self.examples_file)) from None
        inline = [(("examples", cls, i), cls, text) for cls, texts in self.examples.items() for i, text in enumerate(texts)]
        from_file = [(("examples_file",), cls, text) for cls, text in self._file_examples]
        seen: dict[str, str] = {}
        for loc, cls, text in inline + from_file:
            key = " ".join(text.lower().split())
            if seen.setdefault(key, cls) != cls:
                raise _field_error(loc, f"example {text[:60]!r} is labelled both {seen[key]} and {cls}", text)
        return self

    def threshold_for(self, task_class: str) -> float:
        """The ``min_confidence`` that applies when the classifier predicts ``task_class``."""
        if isinstance(self.min_confidence, float):
            return self.min_confidence
        per_class: dict[str, float] = {str(key): bar for key, bar in self.min_confidence.items()}
        return per_class.get(task_class, per_class.get("default", DEFAULT_MIN_CONFIDENCE))

    def labelled_examples(self) -> list[tuple[str, str]]:
        """Every ``(task_class, prompt)`` example: the inline ones, then the file's, in order."""
        inline = [(cls, text) for cls, texts in self.examples.items() for text in texts]
        return inline + self._file_examples


class Portfolio(_Strict):
    models: list[ModelSpec] = Field(min_length=1)
    routes: dict[Literal["SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"], RouteSpec]
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> 'auto' or a task class name")
    routing: RoutingSettings = RoutingSettings()

    @model_validator(mode="after")
    def _references_resolve(self) -> Portfolio:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        missing = [c for c in TASK_CLASSES if c not in self.routes]
        if missing:
            raise ValueError(f"routes missing for task classes: {', '.join(missing)}")
        known = set(names)
        for cls, route in self.routes.items():
            refs: list[tuple[tuple[str | int, ...], str]] = [(("models", i), m) for i, m in enumerate(route.models)]
            if isinstance(route.escalate_to, list):
                refs += [(("escalate_to", i), m) for i, m in enumerate(route.escalate_to)]
            elif route.escalate_to:
                refs.append((("escalate_to",), route.escalate_to))
            for where, ref in refs:
                if ref not in known:
                    msg = f"route {cls} names unknown model {ref!r}; known: {', '.join(sorted(known))}"
                    raise _field_error(("routes", cls, *where), msg, ref)
        for alias, target in self.aliases.items():
            if alias in known:
                raise ValueError(f"alias {alias!r} shadows a model name")
            if target != "auto" and target not in TASK_CLASSES:
                raise ValueError(f"alias {alias!r} -> {target!r}: expected 'auto' or one of {', '.join(TASK_CLASSES)}")
        return self

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        from .errors import UnknownModelError

        raise UnknownModelError(name, [m.name for m in self.models])

    @property
    def largest_model(self) -> ModelSpec:
        """The 'always the largest model' baseline: highest output price, then input price."""
        return max(self.models, key=lambda m: (m.output_usd_per_mtok, m.input_usd_per_mtok))


DEFAULT_PORTFOLIO = "default_portfolio.yaml"
_NOT_FIELDS = {"[key]", _PER_CLASS, _GLOBAL}  # pydantic location parts that name no YAML field


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def parse_portfolio(text: str, source: str = "<string>", base_dir: Path | None = None) -> Portfolio:
    """Parse and validate portfolio YAML; raise ConfigError naming source, field, line.

    Relative file paths inside the portfolio resolve against ``base_dir`` (the file's folder).
    """
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'models' and 'routes' at the top level")
    try:
        return Portfolio.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p in _NOT_FIELDS)))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f":{line}" if line else ""
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}{where}: {field}: {msg}{more}") from None


def load_portfolio(path: str | os.PathLike[str] | None = None) -> Portfolio:
    """Load a portfolio file, or the built-in default when ``path`` is None."""
    if path is None:
        text = resources.files("calibroute.data").joinpath(DEFAULT_PORTFOLIO).read_text("utf-8")
        return parse_portfolio(text, f"<built-in {DEFAULT_PORTFOLIO}>")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return parse_portfolio(text, str(p), p.parent)


def portfolio_from_env() -> Portfolio:
    """The portfolio named by $CALIBROUTE_CONFIG, or the built-in default."""
    return load_portfolio(os.environ.get("CALIBROUTE_CONFIG") or None)
