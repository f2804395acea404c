"""Payment conflicts: logged where they are found, kept by the drain, read for reconcile, and marked resolved by
an operator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from persistence.models import payment_conflicts
from persistence.order_writes import PaymentConflict
from shared import logs

log = logs.get_logger("persistence.conflicts")


@dataclass(frozen=True)
class StoredConflict:
    """A transaction id that reached PostgreSQL for a second order (see models.PaymentConflictRow)."""

    transaction_id: str
    order_id: str
    recorded_order_id: str
    product_id: int
    status: str
    applied: bool
    received_at: datetime
    detected_at: datetime


def log_conflicts(conflicts: Sequence[PaymentConflict]) -> None:
    """A transaction id that paid (or was sent for) two orders: never silent, always with its own tag."""
    for conflict in conflicts:
        log.error(
            logs.PAYMENT_CONFLICT,
            transaction_id=conflict.transaction_id,
            order_id=conflict.order_id,
            recorded_order_id=conflict.recorded_order_id,
            product_id=conflict.product_id,
            result=conflict.status,
            applied=conflict.applied,
        )


def open_conflicts(db: sa.Engine, product_ids: Sequence[int] | None = None) -> dict[int, list[StoredConflict]]:
    """The conflicts no operator has resolved yet, per product, oldest first."""
    c = payment_conflicts.c
    statement = (
        sa.select(
            c.transaction_id,
            c.order_id,
            c.recorded_order_id,
            c.product_id,
            c.status,
            c.applied,
            c.received_at,
            c.detected_at,
        )
        .where(c.resolved_at.is_(None))
        .order_by(c.received_at, c.transaction_id)
    )
    if product_ids is not None:
        statement = statement.where(c.product_id.in_(product_ids))
    found: dict[int, list[StoredConflict]] = {}
    with db.connect() as connection:
        for row in connection.execute(statement).mappings():
            conflict = StoredConflict(**{**row, "applied": bool(row["applied"])})
            found.setdefault(conflict.product_id, []).append(conflict)
    return found


def resolve_conflicts(db: sa.Engine, transaction_id: str) -> int:
    """Mark every open conflict of ``transaction_id`` resolved; the number marked (0: none was open)."""
    c = payment_conflicts.c
    with db.begin() as connection:
        statement = (
            payment_conflicts.update()
            .where(c.transaction_id == transaction_id, c.resolved_at.is_(None))
            .values(resolved_at=datetime.now(UTC))
        )
        return int(connection.execute(statement).rowcount)
