"""``create_app(settings)``: the gateway as an ASGI app (Starlette, with a direct chat path), no module globals.

Everything the app holds (router, backends with their connection pools, ledger,
metrics) is built here or injected, and released on shutdown: the ledger is flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from ..backends import Backend, build_backends
from ..config import Portfolio, load_portfolio
from ..errors import CalibrouteError
from ..ledger.base import LedgerSink
from ..router import Router
from .asgi import GatewayApp
from .chat import Gateway
from .errors import handle_error, handle_http_exception
from .keyrefresh import keep_keys_fresh, key_listener, key_reloader
from .metrics import GatewayMetrics
from .routes import ROUTES
from .settings import GatewaySettings
from .ui import UI_ROUTES, from_gateway, start_catch_up


def create_app(
    settings: GatewaySettings | None = None,
    *,
    portfolio: Portfolio | None = None,
    router: Router | None = None,
    backends: dict[str, Backend] | None = None,
    ledger: LedgerSink | None = None,
) -> GatewayApp:
    """Build the gateway (an ASGI app; ``app.state.gateway`` is the ``Gateway``). Injected parts
    (router, backends, ledger) are the caller's to close; parts built here are closed on shutdown."""
    settings = settings or GatewaySettings()
    if portfolio is None:
        portfolio = router.portfolio if router is not None else load_portfolio(settings.config)
    router = router or Router(portfolio)
    own_backends = backends is None
    backends = backends if backends is not None else build_backends(portfolio)
    own_ledger = ledger is None
    if ledger is None:
        from ..ledger import open_ledger  # SQLAlchemy loads only when the gateway owns a ledger

        journal = {"auto": True, "off": False}.get(settings.ledger_journal, settings.ledger_journal)
        ledger = open_ledger(settings.ledger, store_prompts=settings.store_prompts, journal=journal)
    gateway = Gateway(settings, portfolio, router, backends, ledger, GatewayMetrics())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reloader = key_reloader(ledger)
        tasks = [asyncio.create_task(keep_keys_fresh(*reloader))] if reloader else []
        if gateway.spend.enabled:
            tasks.append(asyncio.create_task(gateway.spend.expire_periodically()))
        listener = app.state.key_listener = key_listener(ledger)
        if listener is not None:
            listener.start()
        catch_up = start_catch_up(app.state.dashboard)  # the ledger's first rollup, off the start-up path
        try:
            yield
        finally:
            if catch_up is not None:
                await asyncio.to_thread(catch_up.stop)
            if listener is not None:
                await asyncio.to_thread(listener.stop)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gateway.rates.aclose()
            gateway.rows.flush()
            if own_backends:
                for backend in backends.values():
                    await backend.aclose()
            if own_ledger:
                ledger.close()

    app = Starlette(
        routes=[*ROUTES, *UI_ROUTES],
        lifespan=lifespan,
        exception_handlers={HTTPException: handle_http_exception, CalibrouteError: handle_error, Exception: handle_error},
    )
    app.state.gateway = gateway
    app.state.dashboard = from_gateway(gateway, settings.ui_token)
    return GatewayApp(app, gateway)
