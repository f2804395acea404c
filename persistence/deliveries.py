"""The merchant outbox's delivery state: which events are due, leases, results, dead letters, retries.

An event is ``pending`` until the merchant answers 2xx (``delivered``) or its ``deadline_at`` passes
(``failed``: dead-lettered, until an operator retries it). Only the first pending event of a stream (an
order, a product) is ever due, so the events of one order arrive in the order they happened. A sender leases
an event before it sends it; a sender killed mid-delivery leaves a lease that lapses, and the event is sent
again (at least once: the merchant dedups by ``id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

import sqlalchemy as sa

from persistence.models import merchant_events

DeliveryStatus = Literal["pending", "delivered", "failed"]
MAX_ERROR = 500


@dataclass(frozen=True)
class Delivery:
    seq: int
    id: str
    type: str
    stream: str
    body: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    deadline_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def _delivery(m: sa.RowMapping) -> Delivery:
    return Delivery(
        seq=m["seq"],
        id=m["id"],
        type=m["type"],
        stream=m["stream"],
        body=m["body"],
        status=cast(DeliveryStatus, m["status"]),
        attempts=m["attempts"],
        created_at=m["created_at"],
        next_attempt_at=m["next_attempt_at"],
        deadline_at=m["deadline_at"],
        delivered_at=m["delivered_at"],
        last_error=m["last_error"],
    )


def _free(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(merchant_events.c.leased_until.is_(None), merchant_events.c.leased_until < now)


def dead_letter_overdue(db: sa.Engine, now: datetime) -> list[Delivery]:
    """Mark ``failed`` every pending event past its deadline that nobody is sending; returns them."""
    with db.begin() as connection:
        overdue = sa.and_(merchant_events.c.status == "pending", merchant_events.c.deadline_at <= now, _free(now))
        rows = connection.execute(sa.select(merchant_events).where(overdue)).mappings().all()
        if rows:
            seqs = [row["seq"] for row in rows]
            connection.execute(
                merchant_events.update()
                .where(merchant_events.c.seq.in_(seqs), merchant_events.c.status == "pending")
                .values(status="failed", leased_until=None)
            )
    return [_delivery(row) for row in rows]


def claim_due(db: sa.Engine, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
    """Lease up to ``limit`` due events, each the first pending event of its stream, oldest first."""
    earlier = merchant_events.alias("earlier")
    first_of_stream = ~sa.exists().where(
        earlier.c.stream == merchant_events.c.stream,
        earlier.c.seq < merchant_events.c.seq,
        earlier.c.status == "pending",
    )
    due = (
        sa.select(merchant_events)
        .where(
            merchant_events.c.status == "pending",
            merchant_events.c.next_attempt_at <= now,
            _free(now),
            first_of_stream,
        )
        .order_by(merchant_events.c.seq)
        .limit(limit)
    )
    claimed = []
    with db.begin() as connection:
        for row in connection.execute(due).mappings().all():
            taken = connection.execute(
                merchant_events.update()
                .where(merchant_events.c.seq == row["seq"], merchant_events.c.status == "pending", _free(now))
                .values(leased_until=now + lease)
            ).rowcount
            if taken:
                claimed.append(_delivery(row))
    return claimed


def mark_delivered(db: sa.Engine, seq: int, now: datetime) -> None:
    with db.begin() as connection:
        connection.execute(
            merchant_events.update()
            .where(merchant_events.c.seq == seq)
            .values(
                status="delivered",
                delivered_at=now,
                leased_until=None,
                attempts=merchant_events.c.attempts + 1,
                last_error=None,
            )
        )


def mark_failed_attempt(db: sa.Engine, delivery: Delivery, now: datetime, retry_at: datetime, error: str) -> bool:
    """Record a failed attempt: try again at ``retry_at`` (never past the deadline), or dead-letter the event
    when its deadline has passed. Returns True when it was dead-lettered."""
    dead = now >= delivery.deadline_at
    values: dict[str, object] = {
        "attempts": merchant_events.c.attempts + 1,
        "last_error": error[:MAX_ERROR],
        "leased_until": None,
        "next_attempt_at": min(retry_at, delivery.deadline_at),
    }
    if dead:
        values["status"] = "failed"
    with db.begin() as connection:
        connection.execute(
            merchant_events.update()
            .where(merchant_events.c.seq == delivery.seq, merchant_events.c.status == "pending")
            .values(**values)
        )
    return dead


def deliveries(db: sa.Engine, statuses: Sequence[DeliveryStatus] | None = None, *, limit: int = 1000) -> list[Delivery]:
    """The newest events (in ``statuses``), newest first."""
    statement = sa.select(merchant_events).order_by(merchant_events.c.seq.desc()).limit(limit)
    if statuses is not None:
        statement = statement.where(merchant_events.c.status.in_(list(statuses)))
    with db.connect() as connection:
        return [_delivery(row) for row in connection.execute(statement).mappings()]


def events_in_order(db: sa.Engine) -> list[Delivery]:
    """Every event, in the order written."""
    with db.connect() as connection:
        statement = sa.select(merchant_events).order_by(merchant_events.c.seq)
        return [_delivery(row) for row in connection.execute(statement).mappings()]


def counts(db: sa.Engine) -> dict[DeliveryStatus, int]:
    """How many events are pending, delivered and dead-lettered."""
    statement = sa.select(merchant_events.c.status, sa.func.count()).group_by(merchant_events.c.status)
    found: dict[DeliveryStatus, int] = {"pending": 0, "delivered": 0, "failed": 0}
    with db.connect() as connection:
        for status, n in connection.execute(statement):
            found[cast(DeliveryStatus, status)] = int(n)
    return found


def retry(db: sa.Engine, ids: Sequence[str] | None, now: datetime, give_up_after: timedelta) -> list[str]:
    """Send dead-lettered events again (``ids``, or every one when None), each with a new deadline; returns
    the ids set pending. An id that is not dead-lettered is left alone."""
    where = merchant_events.c.status == "failed"
    if ids is not None:
        where = sa.and_(where, merchant_events.c.id.in_(list(ids)))
    with db.begin() as connection:
        found = [row[0] for row in connection.execute(sa.select(merchant_events.c.id).where(where))]
        if found:
            connection.execute(
                merchant_events.update()
                .where(merchant_events.c.id.in_(found), merchant_events.c.status == "failed")
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    deadline_at=now + give_up_after,
                    leased_until=None,
                )
            )
    return found
