"""A small ledger with known numbers for the dashboard tests (API and browser)."""

from __future__ import annotations

from datetime import datetime, timezone

from calibroute.ledger import open_ledger
from calibroute.ledger.base import LedgerRow

UTC = timezone.utc
SINCE = "2026-11-10T00:00:00"
UNTIL = "2026-11-11T00:00:00"
H9 = datetime(2026, 11, 10, 9, 15, tzinfo=UTC)
H10 = datetime(2026, 11, 10, 10, 40, tzinfo=UTC)
OUTSIDE = datetime(2026, 11, 9, 23, 59, tzinfo=UTC)


def _row(i: int, **kw: object) -> LedgerRow:
    fields: dict[str, object] = {"request_id": f"seed-{i}", "status": "ok", "http_status": 200}
    fields.update(kw)
    return LedgerRow(**fields)  # type: ignore[arg-type]


SEED_ROWS = [
    _row(1, task_class="SIMPLE", model="small-chat", route_rule="classified", confidence=0.93, prompt_tokens=10,
         completion_tokens=20, cost_usd=0.10, baseline_cost_usd=1.00, latency_ms=100.0, created_at=H9,
         fallback_path=["small-chat"], reason="SIMPLE (0.93): the small model"),
    _row(2, task_class="SIMPLE", model="small-chat", route_rule="classified", confidence=0.88, cost_usd=0.20,
         baseline_cost_usd=1.00, latency_ms=300.0, created_at=H9, fallback_path=["small-chat"]),
    _row(3, task_class="REASONING", model="big-thinker", route_rule="escalated", confidence=0.71, prompt_tokens=5,
         completion_tokens=100, reasoning_tokens=60, cost_usd=1.50, baseline_cost_usd=1.50, latency_ms=2000.0,
         created_at=H10, fallback_path=["mid-reasoner", "big-thinker"], budget="effort=high",
         reason="REASONING (0.71): escalated to the strong model"),
    _row(4, task_class="REASONING", model="mid-reasoner", route_rule="low_confidence", confidence=0.41,
         cost_usd=0.25, baseline_cost_usd=2.00, latency_ms=900.0, created_at=H10, fallback_path=["mid-reasoner"]),
    _row(5, task_class="OPEN_ENDED", model="small-chat", status="error", http_status=502, route_rule="classified",
         confidence=0.8, created_at=H10, fallback_path=["small-chat"], error="backend 502"),
    _row(6, task_class="SIMPLE", model="small-chat", cost_usd=9.0, baseline_cost_usd=9.0, created_at=OUTSIDE),
]

# What the window [SINCE, UNTIL) holds, computed by hand from SEED_ROWS[:5].
EXPECTED = {
    "requests": 5, "errors": 1, "cost_usd": 2.05, "baseline_cost_usd": 5.50, "savings_usd": 3.45,
    "fallbacks": 1, "low_confidence": 1, "escalations": 1,
}


def seed_ledger(url: str) -> None:
    with open_ledger(url) as ledger:
        for row in SEED_ROWS:
            ledger.record(row)
