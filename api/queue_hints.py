"""What a waiting-room ticket's holder is told besides its state: the wait to expect, and when to poll again."""

from __future__ import annotations

import math

from engine.types import Ticket

MAX_POLL_SECONDS = 20
"""Well inside the 60 s after which a ticket that is not polled is dropped."""


def admission_rate(ticket: Ticket) -> float | None:
    """Admissions a second: the room's recent ones, else its cap; None when neither says anything."""
    if ticket.recent_admissions > 0 and ticket.recent_window_ms > 0:
        return ticket.recent_admissions * 1000 / ticket.recent_window_ms
    if ticket.admit_per_second:
        return float(ticket.admit_per_second)
    return None


def estimated_wait_seconds(ticket: Ticket) -> int | None:
    """About how long until the ticket is admitted: 0 once admitted; None when no one can tell (no position yet,
    nothing admitted lately, or nothing that could be admitted)."""
    if ticket.state == "admitted":
        return 0
    if ticket.state != "waiting" or ticket.position is None:
        return None
    rate = admission_rate(ticket)
    if rate is None:
        return None
    return math.ceil(ticket.position / rate)


def poll_after_seconds(ticket: Ticket) -> int | None:
    """The Retry-After of a poll: soon near the front, rarely far back; None for a ticket that is done."""
    if ticket.state in ("used", "expired", "left"):
        return None
    if ticket.state == "admitted":
        return MAX_POLL_SECONDS
    if ticket.position is None:  # before the start, or sold out: nothing moves quickly
        until_start = (
            math.ceil((ticket.sale_starts_at_ms - ticket.now_ms) / 1000)
            if ticket.sale_starts_at_ms and ticket.sale_starts_at_ms > ticket.now_ms
            else MAX_POLL_SECONDS
        )
        return max(1, min(MAX_POLL_SECONDS, until_start))
    if ticket.position <= 10:
        return 1
    wait = estimated_wait_seconds(ticket)
    return max(2, min(MAX_POLL_SECONDS, (wait or MAX_POLL_SECONDS) // 4))
