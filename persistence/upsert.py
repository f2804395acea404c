"""``INSERT ... ON CONFLICT`` for the two databases flashsale runs on (their dialects spell it alike)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# Rows per statement stay under SQLite's and PostgreSQL's bound-parameter limits (32766 and 65535).
MAX_PARAMETERS = 30_000


def insert(connection: sa.Connection, table: sa.Table) -> Any:
    """A dialect ``Insert`` offering ``on_conflict_do_update`` / ``on_conflict_do_nothing`` and ``excluded``."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"flashsale supports PostgreSQL and SQLite, not {connection.dialect.name}")


def chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split rows so that one multi-row VALUES statement stays under the parameter limit."""
    if not rows:
        return []
    size = max(1, MAX_PARAMETERS // len(rows[0]))
    return [rows[i : i + size] for i in range(0, len(rows), size)]
