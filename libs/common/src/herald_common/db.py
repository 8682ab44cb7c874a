"""Engine construction, sessions and migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SelectT = TypeVar("SelectT", bound=Any)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite (no SKIP LOCKED, one writer at a time)."""
    return engine.dialect.name == "sqlite"


def skip_locked(engine: Engine, query: SelectT) -> SelectT:
    """Lock the rows `query` reads, passing over rows another transaction holds (PostgreSQL's
    FOR UPDATE SKIP LOCKED), so two schedulers take different batches. SQLite has no row
    locks: its BEGIN IMMEDIATE gives one writer the whole database."""
    if is_sqlite(engine):
        return query
    return query.with_for_update(skip_locked=True)


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database `url` names when it does not exist (connecting to the
    server's `postgres` database to do it); whether it was created. SQLite files are made
    when first opened."""
    target = make_url(normalize_url(url))
    if target.get_backend_name() != "postgresql" or not target.database:
        return False
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first()
            if exists is None:
                quoted = server.dialect.identifier_preparer.quote(target.database)
                connection.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        server.dispose()
    return exists is None


#: A pooled connection unused for this long is pinged before it is handed out (see
#: _ping_when_idle); one in steady use is not.
IDLE_PING_SECONDS = 10.0


def create_db_engine(
    url: str, *, pool_size: int = 10, idle_ping_seconds: float = IDLE_PING_SECONDS
) -> Engine:
    """An engine for the URL, tuned per dialect."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        _tune_sqlite(engine)
        return engine
    # No overflow: a connection the pool cannot keep is closed on its return, so a process with
    # more work in flight than pool_size (the publisher's greenlets) would open and close a
    # PostgreSQL backend per transaction. Work queues for one of pool_size instead: a publish
    # holds a connection only for its two short transactions, never while its platform answers.
    # hide_parameters: a failed statement's error (logged, or kept as a job's error) never
    # quotes the values it was sent, which are tenants' content.
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, hide_parameters=True
    )
    _ping_when_idle(engine, idle_ping_seconds)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before handing it out only when it sat idle for `idle_seconds`.

    `pool_pre_ping` pings on every checkout: one more round trip for every transaction, which
    was a fifth of the publish path's. A connection in steady use has just proved itself; one
    that sat idle may have been closed by the server, a proxy or a restart, and is the one worth
    checking. A connection that breaks while in use fails its statement instead; SQLAlchemy then
    sees a disconnect and replaces every pooled connection opened before it, so one outage costs
    each process at most one failed transaction (a message retried, a 503), not a failure per
    pooled connection.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            # The pool throws this connection away and checks out another (up to three times).
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


def _tune_sqlite(engine: Engine) -> None:
    # WAL lets readers run beside the one writer; BEGIN IMMEDIATE takes the write lock up front
    # so two claimers never both read the same due rows and then fight over the upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` through the Alembic migrations."""
    command.upgrade(_alembic_config(engine), revision)


def migrations_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == set(script.get_heads())
