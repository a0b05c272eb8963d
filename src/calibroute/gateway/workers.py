"""Run the gateway under uvicorn, in one process or ``workers`` processes sharing the port.

Why a factory read from the environment: uvicorn starts each worker as a fresh process
that imports the app by name, so the settings travel as JSON in ``$CALIBROUTE_GATEWAY_SETTINGS``.
With more than one worker, ``/metrics`` must sum every worker: prometheus_client's
multiprocess mode, in a fresh directory per run (``$PROMETHEUS_MULTIPROC_DIR``, or one made
here and removed at exit), set before any worker imports the library.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .settings import MULTIPROC_ENV, GatewaySettings

SETTINGS_ENV = "CALIBROUTE_GATEWAY_SETTINGS"


def app_from_env() -> object:
    """The uvicorn factory each worker calls."""
    from .app import create_app

    return create_app(GatewaySettings.model_validate_json(os.environ[SETTINGS_ENV]))


def prepare_multiprocess_dir() -> Path | None:
    """Empty the operator's metrics directory, or make a private one; None if one was given."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's counters would be added to this one's
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="calibroute-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def run(settings: GatewaySettings, *, workers: int = 1, log_level: str = "info") -> None:
    import uvicorn

    if workers <= 1:
        from .app import create_app

        if os.environ.get(MULTIPROC_ENV):  # the operator's directory: a previous run's files would count again
            prepare_multiprocess_dir()

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=False)
        return
    from ..config import load_portfolio
    from ..ledger import open_ledger

    load_portfolio(settings.config)  # bad config or an unreachable ledger: one error line here, not one per worker
    open_ledger(settings.ledger).close()
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    made = prepare_multiprocess_dir()
    try:
        uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, host=settings.host, port=settings.port,
                    log_level=log_level, access_log=False)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
