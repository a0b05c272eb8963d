"""Make docs/dashboard.png: headless Chromium's screenshot of /ui over a synthetic two-day ledger.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from servers import serve_in_thread

from calibroute.config import load_portfolio
from calibroute.gateway.ui import dashboard_app
from calibroute.ledger import open_ledger
from calibroute.ledger.base import LedgerRow, utcnow

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=15000"]


def demo_rows(n: int = 6000, hours: int = 48):
    """Requests shaped like the default portfolio's traffic: cheap classes on small models."""
    rng = random.Random(16)
    portfolio = load_portfolio(None)
    price = {m.name: (m.input_usd_per_mtok, m.output_usd_per_mtok) for m in portfolio.models}
    big = price[portfolio.largest_model.name]
    now = utcnow()
    for i in range(n):
        cls = rng.choices(["SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"], [45, 25, 15, 15])[0]
        route = portfolio.routes[cls]
        conf = rng.uniform(0.45, 0.99)
        rule = "low_confidence" if conf < 0.55 else "escalated" if rng.random() < 0.06 else "classified"
        model = route.models[0] if rule == "classified" else route.models[-1]
        path = [model]
        ok = rng.random() > 0.015
        if rng.random() < 0.03:
            path = [route.models[0], model if model != route.models[0] else route.models[-1]]
            model = path[-1]
        p, c = rng.randint(40, 1500), rng.randint(20, 900)
        r = c // 2 if cls == "REASONING" else 0
        inp, out = price[model]
        yield LedgerRow(
            request_id=f"demo-{i:05d}", status="ok" if ok else "error", http_status=200 if ok else rng.choice([502, 504]),
            task_class=cls, model=model, route_rule=rule, budget=route.budget.describe(), confidence=round(conf, 2),
            prompt_tokens=p if ok else 0, completion_tokens=c if ok else 0, reasoning_tokens=r if ok else 0,
            cost_usd=(p * inp + c * out) / 1e6 if ok else 0.0, baseline_cost_usd=(p * big[0] + c * big[1]) / 1e6 if ok else 0.0,
            latency_ms=rng.lognormvariate(6.3 if cls != "REASONING" else 7.5, 0.5), fallback_path=path,
            api_key_id=rng.choice(["k-web", "k-batch", "k-agents"]), error=None if ok else "backend timed out",
            reason=f"{cls} ({conf:.2f}): {rule.replace('_', ' ')} -> {model}",
            created_at=now - timedelta(hours=hours) + timedelta(seconds=i * hours * 3600 / n))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or sys.exit("error: chromium not installed (.ci/setup.d/chromium.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        with open_ledger(f"{tmp}/ledger.db") as ledger:
            for row in demo_rows():
                ledger.record(row)
        with open_ledger(f"{tmp}/ledger.db") as ledger, serve_in_thread(dashboard_app(ledger, load_portfolio(None), "127.0.0.1")) as base:
            subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile", "--window-size=1400,2200",
                            f"--screenshot={args.out.resolve()}", f"{base}/ui?since=48h&by=class"],
                           check=True, capture_output=True, timeout=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
