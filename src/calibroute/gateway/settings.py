"""Gateway settings: one frozen pydantic model, passed to ``create_app`` (no module globals)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..budgets.forcing import ForcingConfig

# prometheus_client's multiprocess directory; here (not in workers.py) so metrics.py needs no import of workers.py
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str | None = Field(default=None, description="portfolio YAML; None: $CALIBROUTE_CONFIG or the built-in default")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ledger: str | None = Field(default=None, description="SQLite path or database URL; None: $CALIBROUTE_LEDGER or ./calibroute-ledger.db")
    store_prompts: bool = False
    ui_token: str | None = Field(default=None, description="bearer token for the /ui dashboard; None: open only on loopback without API keys")
    ledger_journal: str = Field(default="auto", description="crash journal directory; auto: next to the ledger; off: none")
    ledger_batch_s: float = Field(default=0.02, ge=0, description="group ledger rows for this long before handing them over; 0: one by one")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    body_timeout_s: float = Field(default=30.0, gt=0, description="a client that takes longer to send its request body gets 408")
    request_timeout_s: float = Field(
        default=600.0, gt=0,
        description="deadline per request over every retry and fallback, to the first byte of the answer (for non-streamed "
                    "requests, all of it); then 504",
    )
    retries: int = Field(default=1, ge=0, le=10, description="retries per model before the first byte, then fallback")
    backoff_s: float = Field(default=0.1, ge=0, description="first retry delay; doubles per retry, with jitter")
    backoff_max_s: float = Field(default=2.0, ge=0)
    retry_after_max_s: float = Field(
        default=5.0, ge=0, description="a backend's Retry-After up to this is waited before retrying it; longer: next model"
    )
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures that open a model's circuit")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, description="how long an open circuit keeps a model out")
    reservation_ttl_s: float = Field(default=900.0, gt=0, description="spend reservations of a process that died are released after this long")
    redis_url: str | None = Field(default=None, description="redis:// URL: per-key rate limits shared by every process; None: per process")
    affinity: bool = Field(default=False, description="keep a conversation on its model: it moves only upward, tool turns never")
    affinity_release: bool = Field(
        default=True, description="a conversation leaves a far dearer model it climbed to once staying costs over twice "
        "moving (cache included); False: escalations only, it never moves down"
    )
    affinity_jump: bool = Field(
        default=True, description="a climbing conversation goes to its route's highest rung within twice the routed "
        "model's turn cost (one climb instead of several); False: to the routed model"
    )
    thinking_key: str | None = Field(
        default=None, repr=False,
        description="key that signs /v1/messages thinking blocks (HMAC); None: a random key per gateway",
    )
    max_connections: int = Field(default=200, ge=1, description="connection pool size per backend")
    native_thinking_budget: list[str] = Field(
        default_factory=list, description="enable_thinking models whose server takes vLLM's per-request thinking_token_budget"
    )
    think_floor_by_effort: dict[str, int] = Field(
        default_factory=dict, description="think_tags models: minimum thinking tokens by budget effort, e.g. {high: 512}"
    )
    answer_cue: str = "Final Answer: "
    wait_cue: str = "Wait"
    max_waits: int = Field(default=2, ge=0)
    prefill_params: dict[str, Any] = Field(
        default_factory=lambda: {"continue_final_message": True, "add_generation_prompt": False}
    )

    def forcing(self) -> ForcingConfig:
        return ForcingConfig(answer_cue=self.answer_cue, wait_cue=self.wait_cue, max_waits=self.max_waits,
                             prefill_params=dict(self.prefill_params))
