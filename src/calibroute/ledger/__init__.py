"""The usage and cost ledger: one row per gateway request, client API keys, spend.

``open_ledger()`` opens (and migrates) a SQLite file or a PostgreSQL database;
``Ledger.record`` never blocks the caller. See docs/ledger.md.
"""

from __future__ import annotations

import os

from .base import JournaledSink, LedgerRow, LedgerSink
from .keys import ApiKey
from .sink import Ledger
from .store import journal_dir_for, make_engine, resolve_url

__all__ = ["ApiKey", "JournaledSink", "Ledger", "LedgerRow", "LedgerSink", "open_ledger"]


def open_ledger(
    url: str | os.PathLike[str] | None = None,
    *,
    store_prompts: bool = False,
    must_exist: bool = False,
    key_refresh_s: float = 5.0,
    journal: str | os.PathLike[str] | bool = False,
) -> Ledger:
    """Open the ledger at ``url``: None -> $CALIBROUTE_LEDGER or ./calibroute-ledger.db;
    a path -> that SQLite file; ``sqlite:///...`` or ``postgresql://...`` -> that database.

    ``journal``: a directory for the crash journal (docs/ledger.md, Durability), True for the
    default one next to the ledger (``journal_dir_for``), False for none. ``must_exist``
    refuses to create a new SQLite file (for reports). Raises ConfigError with one line when
    the database cannot be reached or migrated, or the journal directory cannot be made.
    """
    resolved = resolve_url(url)
    directory = journal_dir_for(resolved, journal)
    engine = make_engine(resolved, must_exist=must_exist)
    return Ledger(engine, resolved, store_prompts=store_prompts, key_refresh_s=key_refresh_s, journal_dir=directory)
