"""Alembic environment: runs on the engine handed in by herald_common.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import herald_common.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from herald_common.db import normalize_url
from herald_common.settings import get_settings

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine") or create_engine(
        normalize_url(get_settings().database_url)
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
