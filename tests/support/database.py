"""Test databases: a fresh PostgreSQL database when one answers (always in CI), else a SQLite file."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from persistence.db import normalize_url

TABLES = ("merchant_events", "refund_requests", "payment_conflicts", "payments", "orders", "products")


def _maintenance(url: str) -> sa.Engine:
    server = normalize_url(url).set(database="postgres")
    return sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})


def postgres_reachable(url: str) -> bool:
    db = _maintenance(url)
    try:
        with db.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        db.dispose()


def _quoted(url: str) -> str:
    name = make_url(url).database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to create or drop a test database named {name!r}")
    return f'"{name}"'


def create_database(url: str) -> None:
    """Drop and create the database of ``url`` (PostgreSQL), so every session starts empty."""
    db = _maintenance(url)
    try:
        with db.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(url)} WITH (FORCE)"))
            connection.execute(sa.text(f"CREATE DATABASE {_quoted(url)}"))
    finally:
        db.dispose()


def drop_database(url: str) -> None:
    db = _maintenance(url)
    try:
        with db.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(url)} WITH (FORCE)"))
    finally:
        db.dispose()


def drop_stale_databases(url: str) -> None:
    """Drop the ``flashsale_test_<pid>`` databases of test runs that died before dropping their own."""
    from tests.support.isolation import stale_database_names

    db = _maintenance(url)
    try:
        with db.connect() as connection:
            names = [row[0] for row in connection.execute(sa.text("SELECT datname FROM pg_database"))]
            for name in stale_database_names(names):
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        db.dispose()


def empty_tables(db: sa.Engine) -> None:
    with db.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)}"))
        else:
            for table in TABLES:
                connection.execute(sa.text(f"DELETE FROM {table}"))


def count_rows(db: sa.Engine, table: str) -> int:
    with db.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def order_statuses(db: sa.Engine) -> dict[str, str]:
    with db.connect() as connection:
        return {row[0]: row[1] for row in connection.execute(sa.text("SELECT id, status FROM orders"))}


def processing_transactions(db: sa.Engine) -> dict[str, str]:
    """Each order whose payment grace was used, and the transaction whose ``processing`` used it."""
    statement = "SELECT id, processing_transaction_id FROM orders WHERE processing_transaction_id IS NOT NULL"
    with db.connect() as connection:
        return {row[0]: row[1] for row in connection.execute(sa.text(statement))}
