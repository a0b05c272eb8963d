"""The ledger's storage: locations, migrations, and the shared SQLite/PostgreSQL fixture.

``ledger_url`` yields a fresh database for one test: a SQLite file under tmp_path, or a
private schema on the PostgreSQL server named by $CALIBROUTE_TEST_PG_URL (dropped after).
Other ledger test modules import it from here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, inspect, select, text

from calibroute.errors import ConfigError
from calibroute.ledger import LedgerRow, open_ledger
from calibroute.ledger import tables
from calibroute.ledger.migrations import MIGRATIONS, applied_migrations
from calibroute.ledger.store import resolve_url

PG_ENV = "CALIBROUTE_TEST_PG_URL"


def _pg_schema_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (.ci/setup.d/postgres.sh sets it up)")
    url = resolve_url(base)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    schema = "t_" + uuid.uuid4().hex[:12]
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # unreachable server, bad credentials: skip, saying why
        engine.dispose()
        pytest.skip(f"PostgreSQL at {url.render_as_string(hide_password=True)} unreachable: {exc}".splitlines()[0])
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger location: a SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        yield from _pg_schema_url()


def row(i: int = 0, **kw: object) -> LedgerRow:
    fields: dict[str, object] = {"request_id": f"req-{i}", "status": "ok", "http_status": 200}
    fields.update(kw)
    return LedgerRow(**fields)  # type: ignore[arg-type]


def test_open_creates_schema_and_records_migration_once(ledger_url: str) -> None:
    open_ledger(ledger_url).close()
    ledger = open_ledger(ledger_url)
    try:
        with ledger.engine.connect() as conn:
            assert applied_migrations(conn) == sorted(m.__name__ for m in MIGRATIONS)
            names = set(inspect(conn).get_table_names())
        assert {"requests", "api_keys", "calibroute_migrations"} <= names
    finally:
        ledger.close()


def test_sqlite_path_and_url_forms_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with open_ledger(path) as ledger:
        ledger.record(row(1))
    with open_ledger(f"sqlite:///{path}") as ledger, ledger.engine.connect() as conn:
        assert conn.execute(select(tables.requests.c.request_id)).scalars().all() == ["req-1"]


def test_default_location_is_env_var_then_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALIBROUTE_LEDGER", raising=False)
    open_ledger().close()
    assert (tmp_path / "calibroute-ledger.db").exists()
    monkeypatch.setenv("CALIBROUTE_LEDGER", str(tmp_path / "from-env.db"))
    open_ledger().close()
    assert (tmp_path / "from-env.db").exists()


def test_postgresql_url_uses_psycopg_driver() -> None:
    assert resolve_url("postgresql://u:p@127.0.0.1/db").drivername == "postgresql+psycopg"
    assert resolve_url("postgresql+psycopg://u:p@127.0.0.1/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("mysql://u@localhost/db", "not supported"),
        ("{tmp}/no/such/dir/l.db", "does not exist"),
        ("", "empty"),
    ],
)
def test_bad_location_is_one_clear_config_error(tmp_path: Path, location: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        open_ledger(location.format(tmp=tmp_path))
    assert "\n" not in str(info.value)


def test_unreachable_postgres_is_one_line_without_password() -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot open") as info:
        open_ledger(f"postgresql://calib:s3cret@127.0.0.1:{port}/nodb")
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message and f"127.0.0.1:{port}" in message


def test_report_mode_refuses_to_create_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ledger at"):
        open_ledger(tmp_path / "missing.db", must_exist=True)
    assert not (tmp_path / "missing.db").exists()


def test_processes_opening_a_new_ledger_together_all_succeed(ledger_url: str) -> None:
    import threading

    start, errors = threading.Barrier(8), []

    def open_once() -> None:  # each has its own engine and connections, like a separate process
        start.wait()
        try:
            open_ledger(ledger_url).close()
        except ConfigError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=open_once) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        assert applied_migrations(conn) == sorted(m.__name__ for m in MIGRATIONS)


def test_ledger_from_before_the_unique_request_id_keeps_its_repeated_ids(ledger_url: str) -> None:
    from calibroute.ledger.migrations import migrate_engine
    from calibroute.ledger.store import make_engine

    engine = make_engine(resolve_url(ledger_url))
    with engine.begin() as conn:  # back to the schema before m005, holding a repeated id
        conn.execute(text("DROP INDEX ux_requests_request_id"))
        conn.execute(tables.migrations.delete().where(tables.migrations.c.name == "m005_unique_request_id"))
        for _ in range(3):
            conn.execute(tables.requests.insert().values(request_id="dup", created_at=row().created_at,
                                                         status="ok", http_status=200))
    assert migrate_engine(engine) == ["m005_unique_request_id"]
    engine.dispose()
    with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        ids = conn.execute(select(tables.requests.c.id, tables.requests.c.request_id).order_by(tables.requests.c.id)).all()
    assert [rid for _, rid in ids] == ["dup", f"dup#{ids[1][0]}", f"dup#{ids[2][0]}"]
