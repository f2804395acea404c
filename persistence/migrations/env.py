"""Alembic environment: one set of migrations for PostgreSQL and SQLite (batch mode on SQLite).

On PostgreSQL the migration transaction first takes an advisory lock, so two ``flashsale migrate``
run at once apply each revision once: the second waits, then finds the database at head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from persistence.db import make_engine
from persistence.models import Base

MIGRATION_LOCK = 0x666C617368  # "flash": the advisory lock key flashsale's migrations share

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with db.connect() as connection:
            _run(connection)
    finally:
        db.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
