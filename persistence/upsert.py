"""``INSERT ... ON CONFLICT`` for the two databases flashsale runs on (their dialects spell it alike)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert(connection: sa.Connection, table: sa.Table) -> Any:
    """A dialect ``Insert`` offering ``on_conflict_do_update`` / ``on_conflict_do_nothing`` and ``excluded``."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"flashsale supports PostgreSQL and SQLite, not {connection.dialect.name}")
