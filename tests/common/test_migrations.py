"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import herald_common.models  # noqa: F401  (registers every table on the metadata)


def _differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def test_migrations_match_the_models_on_sqlite(sqlite_engine):
    # Given a SQLite database built by the migrations (the fixture)
    # When it is compared with the models
    # Then nothing differs: no table, column, type or index is missing or extra
    assert _differences(sqlite_engine) == []


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(pg_url):
    # Given the session's PostgreSQL database, built by the migrations
    engine = create_engine(pg_url)
    try:
        # Then the models and the schema agree
        assert _differences(engine) == []
    finally:
        engine.dispose()
