"""The read-only dashboard: ``GET /ui`` (one page from the package) and JSON under ``/ui/api/...``.

Served by the gateway and by ``calibroute dashboard`` (no gateway, just a ledger). Access
(``Dashboard.check_access``): ``Authorization: Bearer`` with the ``ui_token`` or, when API keys
are enabled, an admin key (``calibroute keys create NAME --admin``); an ordinary API key gets 403.
Without either, the dashboard answers only when API keys are off *and* it listens on a loopback
address *and* the client is on loopback (uvicorn takes the client from ``X-Forwarded-For`` when a
proxy on this machine sends it), so it is never open by default to a network.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Portfolio
from ..errors import CalibrouteError, InputError
from ..ledger import dashboard_queries as q
from ..ledger.keys import ApiKey
from ..ledger.rollup_catchup import CatchUp
from .errors import Forbidden, Unauthorized, error_response

OPEN_WITH = "an admin key (calibroute keys create NAME --admin) or the gateway's --ui-token"


class NoLedger(CalibrouteError):
    http_status = 503
    error_type = "server_error"
    code = "no_ledger"


@dataclass
class Dashboard:
    """What the dashboard reads: the ledger's engine, the portfolio, and (in a gateway) live state."""

    engine: Engine | None
    portfolio: Portfolio | None
    host: str
    ui_token: str | None = None
    keys_enabled: Callable[[], bool] = lambda: False
    breakers: Callable[[], list[dict[str, Any]]] = field(default=list)
    authenticate: Callable[[str], ApiKey | None] = lambda token: None
    catch_up: CatchUp | None = None  # the background first rollup, while the app runs

    def check_access(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if self.ui_token and hmac.compare_digest(given.encode(), self.ui_token.encode()):
            return
        if self.keys_enabled():
            key = self.authenticate(given) if given else None
            if key is None:
                raise Unauthorized(f"dashboard: send 'Authorization: Bearer <{OPEN_WITH}>'")
            if not key.is_admin:
                raise Forbidden(f"dashboard: API key {key.name!r} may call the API but not open the dashboard; "
                                f"use {OPEN_WITH}")
            return
        if self.ui_token:
            raise Unauthorized("dashboard: send 'Authorization: Bearer <ui token>'")
        if not is_loopback(self.host):
            raise Forbidden(f"dashboard is off: listening on {self.host}, not loopback; start with --ui-token "
                            "or create an admin key")
        client = request.client.host if request.client else ""
        if not is_loopback(client):  # a reverse proxy on this host that sends X-Forwarded-For: uvicorn puts it here
            raise Forbidden(f"dashboard is off for {client or 'this client'}: not on this machine; start with "
                            "--ui-token or create an admin key")

    def refresh_totals(self) -> bool:
        """Whether a totals read refreshes the rollups (see ``CatchUp.gate``)."""
        return self.catch_up.gate() if self.catch_up is not None else True

    def rollup_state(self) -> dict[str, Any]:
        return self.catch_up.progress() if self.catch_up is not None else {"state": "on_read"}

    def ledger(self) -> Engine:
        if self.engine is None:
            raise NoLedger("this gateway's ledger is not a database the dashboard can read")
        return self.engine


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def from_gateway(gateway: Any, ui_token: str | None) -> Dashboard:
    """The dashboard of a running gateway: its ledger, portfolio and circuit breakers."""
    ledger = gateway.ledger

    def breakers() -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for model in (m.name for m in gateway.portfolio.models):
            b = gateway.fallback.breakers.get(model)
            tripped = b is not None and b.consecutive >= b.failures
            state = "closed" if not tripped else "open" if now < b.open_until else "half_open"
            out.append({"model": model, "state": state, "consecutive_failures": b.consecutive if b else 0,
                        "open_for_s": max(0.0, b.open_until - now) if tripped else 0.0})
        return out

    return Dashboard(engine=getattr(ledger, "engine", None), portfolio=gateway.portfolio,
                     host=gateway.settings.host, ui_token=ui_token,
                     keys_enabled=getattr(ledger, "keys_enabled", lambda: False), breakers=breakers,
                     authenticate=getattr(ledger, "authenticate", lambda token: None))


def portfolio_view(portfolio: Portfolio | None) -> dict[str, Any] | None:
    if portfolio is None:
        return None
    largest = portfolio.largest_model.name
    return {
        "largest_model": largest,
        "models": [{"name": m.name, "input_usd_per_mtok": m.input_usd_per_mtok, "output_usd_per_mtok": m.output_usd_per_mtok,
                    "reasoning": m.reasoning.value, "context_window": m.context_window} for m in portfolio.models],
        "routes": {cls: {"models": r.models, "budget": r.budget.describe(), "escalate_to": r.escalate_to}
                   for cls, r in portfolio.routes.items()},
        "aliases": dict(portfolio.aliases),
    }


def _json(data: object) -> Response:
    return Response(json.dumps(data), media_type="application/json", headers={"cache-control": "no-store"})


def _window(request: Request) -> q.Window:
    p = request.query_params
    return q.Window.parse(p.get("since"), p.get("until"), p.get("bucket"))


def _api(read: Callable[[Dashboard, Request], object]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        dash: Dashboard = request.app.state.dashboard
        try:
            dash.check_access(request)
            return _json(await run_in_threadpool(read, dash, request))
        except Exception as exc:
            return error_response(exc)

    return endpoint


def _recent(dash: Dashboard, request: Request) -> object:
    p = request.query_params
    try:
        limit = int(p.get("limit", "50"))
        before = int(p["before_id"]) if p.get("before_id") else None
    except ValueError:
        raise InputError("limit and before_id must be integers") from None
    filters = {k: v for k, v in p.items() if k in q.RECENT_FILTERS and v}
    return q.recent(dash.ledger(), limit, filters, before)


def _status(dash: Dashboard, request: Request) -> object:
    keys = dash.keys_enabled()
    return {"portfolio": portfolio_view(dash.portfolio), "breakers": dash.breakers(), "keys_enabled": keys,
            "token_required": bool(dash.ui_token) or keys,
            "rollup": dash.rollup_state() if dash.engine is not None else None}


async def page(request: Request) -> Response:
    """The page itself holds no data (it fetches /ui/api/...), so it is served to anyone who reaches it."""
    html = resources.files("calibroute.gateway").joinpath("ui_static/dashboard.html").read_text("utf-8")
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                        "script-src 'self' 'unsafe-inline'; img-src 'self' data:"})


UI_ROUTES = [
    Route("/ui", page, methods=["GET"]),
    Route("/ui/api/summary", _api(lambda d, r: q.summary(d.ledger(), _window(r), d.refresh_totals())), methods=["GET"]),
    Route("/ui/api/spend", _api(lambda d, r: q.spend_series(d.ledger(), _window(r), r.query_params.get("by") or None,
                                                            d.refresh_totals())), methods=["GET"]),
    Route("/ui/api/flows", _api(lambda d, r: q.class_flows(d.ledger(), _window(r), d.refresh_totals())),
          methods=["GET"]),
    Route("/ui/api/latency", _api(lambda d, r: q.latency(d.ledger(), _window(r))), methods=["GET"]),
    Route("/ui/api/errors", _api(lambda d, r: q.errors_series(d.ledger(), _window(r), d.refresh_totals())),
          methods=["GET"]),
    Route("/ui/api/requests", _api(_recent), methods=["GET"]),
    Route("/ui/api/status", _api(_status), methods=["GET"]),
]


def start_catch_up(dash: Dashboard) -> CatchUp | None:
    """Start the ledger's first rollup in the background (a no-op pass when it is caught up);
    the app's shutdown stops it (``CatchUp.stop``)."""
    if dash.engine is not None:
        dash.catch_up = CatchUp(dash.engine).start()
    return dash.catch_up


def dashboard_app(ledger: Any, portfolio: Portfolio | None, host: str, ui_token: str | None = None) -> Any:
    """The dashboard alone (``calibroute dashboard``): the page and its API over ``ledger``; no gateway,
    so no circuit-breaker state. The caller closes ``ledger``."""
    from starlette.applications import Starlette

    dash = Dashboard(engine=ledger.engine, portfolio=portfolio, host=host, ui_token=ui_token,
                     keys_enabled=ledger.keys_enabled, authenticate=ledger.authenticate)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        catch_up = start_catch_up(dash)
        try:
            yield
        finally:
            if catch_up is not None:
                await asyncio.to_thread(catch_up.stop)

    app = Starlette(routes=UI_ROUTES, lifespan=lifespan)
    app.state.dashboard = dash
    return app
