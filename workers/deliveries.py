"""Send the merchant events: signed POSTs, at least once, in order per order, retried with backoff and jitter.

A round dead-letters what passed its deadline, then leases the due events (the first pending one of each
stream, persistence.deliveries), POSTs them concurrently and records each answer: 2xx is delivered, anything
else (an error status, a timeout, a refused connection) is tried again after an exponentially growing delay
with jitter, until the deadline (24 h by default). Rounds run as RQ jobs on their own queue, worked by their
own process (``flashsale worker --deliveries``), so a slow or failing merchant never holds up the drain.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from persistence import deliveries as store
from shared import logs, signing
from shared.settings import Settings

log = logs.get_logger("flashsale.workers.deliveries")

ROUND_BATCH = 64
"""Events leased at a time; each is sent on its own thread."""
SENDERS = 8
ROUND_BUDGET_SECONDS = 30.0
"""A round stops taking new events after this, so a job never runs unbounded (the next round goes on)."""


@dataclass(frozen=True)
class Policy:
    url: str
    secret: str
    timeout: float = 5.0
    base: float = 1.0
    cap: float = 3600.0
    give_up_after: timedelta = timedelta(hours=24)

    @property
    def lease(self) -> timedelta:
        """Longer than any send, so a lease lapses only when its sender died."""
        return timedelta(seconds=2 * self.timeout + 1)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy | None:
        if settings.merchant_webhook_url is None or settings.merchant_webhook_secret is None:
            return None
        return cls(
            settings.merchant_webhook_url,
            settings.merchant_webhook_secret,
            settings.merchant_timeout_seconds,
            settings.merchant_retry_base_seconds,
            settings.merchant_retry_max_seconds,
            timedelta(seconds=settings.merchant_give_up_seconds),
        )


def backoff(attempt: int, base: float, cap: float, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before attempt ``attempt + 1``: ``base · 2^(attempt-1)`` capped at ``cap``, with "equal jitter"
    (half fixed, half random), so that retries of many events spread out but never come back at once."""
    delay: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(delay / 2 + rng(0, delay / 2))


def signed_headers(policy: Policy, body: bytes) -> dict[str, str]:
    """The inbound webhook's signature, over the event body: a merchant verifies it with the same code."""
    return {**signing.headers(policy.secret, body), "Content-Type": "application/json"}


@dataclass
class RoundResult:
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    more: bool = False
    """Due events remained when the round's budget ran out."""
    errors: list[str] = field(default_factory=list)


def _send(client: httpx.Client, policy: Policy, delivery: store.Delivery) -> str | None:
    """None when the merchant took it (2xx); else what went wrong."""
    body = delivery.body.encode()
    try:
        answer = client.post(policy.url, content=body, headers=signed_headers(policy, body))
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if 200 <= answer.status_code < 300:
        return None
    return f"HTTP {answer.status_code}"


def deliver_round(
    db: sa.Engine,
    policy: Policy,
    *,
    client: httpx.Client | None = None,
    budget: float = ROUND_BUDGET_SECONDS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RoundResult:
    """Send what is due until nothing is, or ``budget`` seconds have passed."""
    result = RoundResult()
    own = client is None
    http = client or httpx.Client(timeout=policy.timeout)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="merchant") as senders:
            while True:
                for dead in store.dead_letter_overdue(db, clock()):
                    _dead(dead, result)
                if time.monotonic() - started > budget:
                    result.more = True
                    break
                batch = store.claim_due(db, clock(), policy.lease, ROUND_BATCH)
                if not batch:
                    break
                outcomes = list(senders.map(lambda d: _send(http, policy, d), batch))
                for delivery, error in zip(batch, outcomes, strict=True):
                    _record(db, policy, delivery, error, clock(), result)
    finally:
        if own:
            http.close()
    return result


def _record(
    db: sa.Engine, policy: Policy, delivery: store.Delivery, error: str | None, now: datetime, result: RoundResult
) -> None:
    where = {"event_id": delivery.id, "type": delivery.type, "stream": delivery.stream}
    if error is None:
        store.mark_delivered(db, delivery.seq, now)
        result.delivered += 1
        log.info(logs.MERCHANT_EVENT_DELIVERED, attempts=delivery.attempts + 1, **where)
        return
    retry_at = now + timedelta(seconds=backoff(delivery.attempts + 1, policy.base, policy.cap))
    result.errors.append(error)
    if store.mark_failed_attempt(db, delivery, now, retry_at, error):
        _dead(delivery, result, error)
        return
    result.retried += 1
    log.warning(
        logs.MERCHANT_DELIVERY_FAILED,
        attempts=delivery.attempts + 1,
        error=error,
        retry_at=retry_at.isoformat(),
        **where,
    )


def _dead(delivery: store.Delivery, result: RoundResult, error: str | None = None) -> None:
    result.dead_lettered += 1
    log.error(
        logs.MERCHANT_EVENT_DEAD_LETTERED,
        event_id=delivery.id,
        type=delivery.type,
        stream=delivery.stream,
        attempts=delivery.attempts + (1 if error else 0),
        error=error or delivery.last_error,
    )
