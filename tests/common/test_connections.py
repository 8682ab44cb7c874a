"""Pooled PostgreSQL connections that break: an idle one is pinged and replaced before use; one
that breaks in a hot transaction fails that transaction only, and is not pooled again."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from herald_common.db import create_db_engine
from herald_common.hot import Hot, Rollback

pytestmark = pytest.mark.postgres


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def kill(engine: Engine, pid: int) -> None:
    """End one server process, as a restart or a proxy timeout would."""
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


def test_an_idle_connection_that_broke_is_replaced_before_it_is_used(pg_url):
    # Given a pool of one connection, idle (long enough to be pinged), whose server process
    # has gone away
    engine = create_db_engine(pg_url, pool_size=1, idle_ping_seconds=0)
    other = create_db_engine(pg_url, pool_size=1)
    try:
        first = backend_pid(engine)
        kill(other, first)

        # When it is used again, I expect a working connection (a new one)
        assert backend_pid(engine) != first
    finally:
        engine.dispose()
        other.dispose()


def test_a_connection_broken_mid_use_fails_one_transaction_and_is_not_pooled_again(pg_url):
    # Given a hot path on a pool of one connection, which is not pinged (in steady use)
    engine = create_db_engine(pg_url, pool_size=1, idle_ping_seconds=3600)
    other = create_db_engine(pg_url, pool_size=1)
    hot = Hot(engine)
    try:
        with hot.transaction() as db:
            pid = db.execute(text("SELECT pg_backend_pid()")).scalar()
        kill(other, pid)

        # When the next transaction runs, it fails with the driver's error...
        with pytest.raises(psycopg.OperationalError), hot.transaction() as db:
            db.execute(text("SELECT 1"))

        # ...and the one after it gets a new connection
        with hot.transaction() as db:
            assert db.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        other.dispose()


def test_rollback_ends_a_hot_transaction_with_nothing_written(pg_engine):
    hot = Hot(pg_engine)
    with hot.transaction() as db:
        db.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t-1', 'x', now())"))
        raise Rollback
    with hot.transaction() as db:
        assert db.execute(text("SELECT count(*) FROM tenants")).scalar() == 0


def test_a_statement_that_fails_in_a_hot_transaction_writes_nothing_and_the_next_one_works(
    pg_engine,
):
    hot = Hot(pg_engine)
    insert = text("INSERT INTO tenants (id, name, created_at) VALUES (:id, 'x', now())")
    # Given a transaction whose second statement fails (the same primary key twice)
    with pytest.raises(psycopg.errors.UniqueViolation), hot.transaction() as db:
        db.execute(insert, {"id": "t-1"})
        db.execute(insert, {"id": "t-1"})

    # Then nothing of it was written, and the connection serves the next transaction
    with hot.transaction() as db:
        count = db.execute(text("SELECT count(*) FROM tenants"))
        db.execute(insert, {"id": "t-2"})
    assert count.scalar() == 0
    with hot.transaction() as db:
        assert db.execute(text("SELECT count(*) FROM tenants")).scalar() == 1
